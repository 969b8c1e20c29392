/* SPDX-License-Identifier: MIT */
/*
 * sw_outputs.c - the loop's outputs: a topic (librdkafka, acknowledged) or a file
 * (JSON lines or CSV, cut back to a checkpoint's length at start).
 */
#include <unistd.h>

#include "sw_run_int.h"

sw_rc
run_out_open(const out_spec *s, out *o, int64_t keep, int csv_header,
         sw_err *err)
{
    memset(o, 0, sizeof(*o));
    o->spec = s;
    if (s->kind == OUT_KAFKA)
        return sw_kafka_sink_open(s->bootstrap, s->topic, s->conf, &o->k, err);
    o->fp = fopen(s->path, "a+");
    if (o->fp == NULL)
        return fail(err, SW_E_IO, "output %s: %s", s->path, strerror(errno));
    if (ftruncate(fileno(o->fp), keep > 0 ? keep : 0) != 0)
        return fail(err, SW_E_IO, "output %s: truncate: %s", s->path,
                    strerror(errno));
    o->bytes = keep > 0 ? keep : 0;
    if (o->bytes == 0 && csv_header && s->kind == OUT_CSV) {
        static const char h[] =
            "partition,offset,time_us,key,prediction,model,sha256\n";

        fputs(h, o->fp);
        o->bytes += (int64_t)sizeof(h) - 1;
    }
    return SW_OK;
}

sw_rc
run_out_write(out *o, const char *key, size_t key_len, const char *line,
          size_t len, const char *const *headers, sw_err *err)
{
    if (o->k != NULL)
        return sw_kafka_sink_send(o->k, key, key_len, line, len, -1, 0,
                                  headers, err);
    if (fwrite(line, 1, len, o->fp) != len || fputc('\n', o->fp) == EOF)
        return fail(err, SW_E_IO, "output %s: %s", o->spec->path,
                    strerror(errno));
    o->bytes += (int64_t)len + 1;
    return SW_OK;
}

sw_rc
run_out_sync(out *o, sw_err *err)
{
    if (o->k != NULL)
        return sw_kafka_sink_flush(o->k, 60000, err);
    if (o->fp == NULL)
        return SW_OK;
    if (fflush(o->fp) != 0 || fsync(fileno(o->fp)) != 0)
        return fail(err, SW_E_IO, "output %s: %s", o->spec->path,
                    strerror(errno));
    return SW_OK;
}

void
run_out_close(out *o)
{
    sw_kafka_sink_free(o->k);
    if (o->fp != NULL)
        fclose(o->fp);
    memset(o, 0, sizeof(*o));
}
