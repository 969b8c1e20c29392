/* SPDX-License-Identifier: MIT */
/* libFuzzer: any bytes as a .swm model file (sw_model_load_buffer, which
 * every loader goes through). A file is refused or loaded; never a crash,
 * a leak or an undefined operation. */
#include <stddef.h>
#include <stdint.h>

#include "streamwise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sw_model *m = NULL;

    if (sw_model_load_buffer(data, size, &m, NULL) == SW_OK)
        sw_model_free(m);
    return 0;
}
