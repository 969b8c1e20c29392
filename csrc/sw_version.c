/* SPDX-License-Identifier: MIT */
/*
 * sw_version.c - which library this is, for headers, model files and bugs.
 *
 * SW_BUILD_ID comes from build/gen/sw_build_id.h, which the Makefile writes
 * (git commit, "+dirty" when csrc/ had uncommitted changes), so a model
 * file can say which core wrote it.
 */
#include <stdio.h>

#include "sw_build_id.h"
#include "sw_internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int
sw_version(void)
{
    return SW_VERSION;
}

#define VERSION_STR                                                            \
    STR(SW_VERSION_MAJOR) "." STR(SW_VERSION_MINOR) "." STR(SW_VERSION_PATCH)
#define FORMAT_STR STR(SW_FORMAT_MAJOR) "." STR(SW_FORMAT_MINOR)
#ifdef __VERSION__
#define CC_STR " cc " __VERSION__
#else
#define CC_STR ""
#endif

const char *
sw_version_str(void)
{
    return VERSION_STR;
}

const char *
sw_build_id(void)
{
    return SW_BUILD_ID;
}

const char *
sw_build_info(void)
{
    return "streamwise " VERSION_STR " build " SW_BUILD_ID CC_STR
           " model-format " FORMAT_STR;
}
