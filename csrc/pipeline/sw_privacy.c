/* SPDX-License-Identifier: MIT */
/*
 * sw_privacy.c - keyed hashing of entity ids. The values of the fields a
 * spec lists under privacy.fields are replaced, as they enter a push, by
 * SipHash-2-4 (libsodium's crypto_shorthash) under a key derived from a
 * secret the caller supplies: state, buffered events, checkpoints, feature
 * rows and profiles only ever hold the keyed hash, and without the secret
 * nobody can test a guessed id against them. The secret itself is never
 * stored; a checkpoint keeps a fingerprint (a BLAKE2b of the secret under
 * another context) so that restoring with the wrong secret is refused
 * rather than silently starting every key afresh.
 */
#include <jansson.h>
#include <math.h>
#include <sodium.h>

#include "sw_pipeline_int.h"

/* libsodium's generichash takes a key of 16..64 bytes: these contexts
 * separate the hashing key from the fingerprint. */
static const unsigned char ctx_key[16] = "sw.privacy.key..";
static const unsigned char ctx_fingerprint[16] = "sw.privacy.fprnt";

sw_rc
sw__privacy_parse(sw_pipeline *p, json_t *v, sw_err *err)
{
    json_t *fs = json_is_object(v) ? json_object_get(v, "fields") : NULL;
    const char *name;
    json_t *e;
    size_t i;

    if (fs == NULL || !json_is_array(fs) || json_array_size(fs) == 0)
        return sw__fail(err, SW_E_INVAL,
                        "privacy: expected {\"fields\": [\"user\", ...]}");
    json_object_foreach(v, name, e)
    {
        if (strcmp(name, "fields"))
            return sw__fail(err, SW_E_INVAL, "privacy.%s: not a setting", name);
    }
    json_array_foreach(fs, i, e)
    {
        int f = -1;

        if (json_is_string(e)) {
            for (f = 0; f < p->n_fields &&
                        strcmp(p->fields[f].name, json_string_value(e));
                 f++)
                ;
        }
        if (f < 0 || f == p->n_fields)
            return sw__fail(err, SW_E_INVAL,
                            "privacy.fields[%zu]: '%s' is not an event field",
                            i, json_is_string(e) ? json_string_value(e) : "?");
        if (f == p->time_field)
            return sw__fail(err, SW_E_INVAL,
                            "privacy.fields[%zu]: the time cannot be hashed",
                            i);
        p->fields[f].private_ = 1;
        p->n_private++;
    }
    return SW_OK;
}

sw_rc
sw_pipeline_set_secret(sw_pipeline *p, const void *secret, size_t len,
                       sw_err *err)
{
    unsigned char fp[SW_FINGERPRINT_BYTES];

    if (p == NULL || secret == NULL)
        return sw__fail(err, SW_E_INVAL, "secret: NULL argument");
    if (len < 16)
        return sw__fail(err, SW_E_INVAL,
                        "secret: %zu bytes; a privacy secret needs at least 16",
                        len);
    crypto_generichash(fp, sizeof(fp), secret, len, ctx_fingerprint,
                       sizeof(ctx_fingerprint));
    if (p->has_fingerprint && sodium_memcmp(fp, p->fingerprint, sizeof(fp)))
        return sw__fail(err, SW_E_INVAL,
                        "secret: not the secret this pipeline's state was "
                        "hashed with");
    crypto_generichash(p->secret_key, sizeof(p->secret_key), secret, len,
                       ctx_key, sizeof(ctx_key));
    memcpy(p->fingerprint, fp, sizeof(fp));
    p->has_fingerprint = 1;
    p->has_secret = 1;
    return SW_OK;
}

uint64_t
sw__private_hash(const sw_pipeline *p, const sw_column *c, int64_t i,
                 uint64_t salt)
{
    unsigned char in[9], out[crypto_shorthash_BYTES];
    const void *msg = in;
    size_t n = 9;
    uint64_t u;

    if (c->type == SW_COL_STR) {
        const char *s = (const char *)c->data + i * c->width;

        for (n = 0; n < (size_t)c->width && s[n] != '\0'; n++)
            ;
        msg = s;
    } else {
        /* the number rule of column_hash: 3 and 3.0 are one id */
        double v = c->type == SW_COL_I64 ? 0 : sw__column_number(c, i);

        if (c->type == SW_COL_I64) {
            u = (uint64_t)((const int64_t *)c->data)[i];
            in[8] = 0;
        } else if (v == floor(v) && fabs(v) < 9.0e15) {
            u = (uint64_t)(int64_t)v;
            in[8] = 0;
        } else {
            memcpy(&u, &v, 8);
            in[8] = 1;
        }
        sw__put_le64(in, u);
    }
    crypto_shorthash(out, msg, n, p->secret_key);
    return sw__mix64(salt, sw__get_le64(out));
}
