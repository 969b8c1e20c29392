"""Seed corpora for the fuzzers, made by the project's own code:

    PYTHONPATH=python /usr/bin/python3 tests/fuzz/seeds.py DIR

writes DIR/model (model files of every kind, a bundle), DIR/spec (specs
of every operator), DIR/checkpoint (checkpoints of those pipelines) and
DIR/decode (JSON event lines, good and bad), DIR/avro (Avro event
messages, written by Apache Avro's Python encoder, python3-avro) and
DIR/rows (sw-serve's input rows, after fuzz_rows.c's mode byte)."""
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import scipy.sparse as sp  # noqa: E402

import streamwise as sw  # noqa: E402


def specs():
    from test_pipeline import SPEC, SPEC2, SPEC_ARRIVAL
    small = {"events": {"time": "ts", "fields": {"user": "str",
                                                 "price": "float64",
                                                 "item": "int64"}},
             "features": [{"name": "n", "op": "count", "key": "user"},
                          {"name": "d", "op": "distinct", "key": "user",
                           "field": "item"},
                          {"name": "h", "op": "sum", "key": "user",
                           "field": "price",
                           "window": {"hopping": "1h", "every": "10m"}},
                          {"name": "x", "op": "hash",
                           "fields": ["user", "item"], "dims": 64}],
             "watermark": {"out_of_orderness": "5s"}, "ttl": "1d"}
    private = dict(small, privacy={"fields": ["user"]})
    return [small, private, SPEC, SPEC2, SPEC_ARRIVAL]


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main(out):
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] > 0).astype(int)
    models = {"pa": sw.PassiveAggressiveClassifier().fit(X, y),
              "scw": sw.SCWClassifier().fit(X, rng.integers(0, 3, 60)),
              "gbdt": sw.GBDTClassifier(n_estimators=3).fit(X, y),
              "als": sw.ALS(factors=2, iterations=1).fit(
                  sp.random(8, 6, density=0.5, random_state=0,
                            format="csr"))}
    # a linear model that keeps feature names, for sw-serve's CSV header
    import pandas as pd
    models["named"] = sw.PassiveAggressiveClassifier().fit(
        pd.DataFrame(X, columns=["a", "b", "c", "d"]), y)
    for name, m in models.items():
        m.save(os.path.join(tmp, name))
        write(os.path.join(out, "model"), name,
              open(os.path.join(tmp, name), "rb").read())
    for i, spec in enumerate(specs()):
        write(os.path.join(out, "spec"), f"spec{i}",
              json.dumps(spec).encode())
        os.environ.setdefault("STREAMWISE_PRIVACY_SECRET",
                              "0123456789abcdef")
        p = sw.Pipeline(spec)
        n = 40
        p.push({"ts": np.arange(n) * 1_000_000,
                "user": np.array([f"u{k % 5}" for k in range(n)]),
                "item": np.arange(n) % 7, "price": np.linspace(1, 9, n),
                "click": (np.arange(n) % 3 == 0).astype(np.int8)})
        ck = os.path.join(tmp, f"ck{i}")
        p.checkpoint(ck, b"pos")
        write(os.path.join(out, "checkpoint"), f"ck{i}",
              open(ck, "rb").read())
        if i == 0:
            out_ = p.push({"ts": [10**8], "user": ["u1"], "item": [3],
                           "price": [2.0]})
            g = sw.GBDTClassifier(n_estimators=2).fit(
                np.repeat(out_.dense[:1], 20, axis=0), np.arange(20) % 2)
            g.save(os.path.join(tmp, "bundle"), pipeline=p, sparse=False)
            write(os.path.join(out, "model"), "bundle",
                  open(os.path.join(tmp, "bundle"), "rb").read())
    lines = [b'{"ts": 5, "user": "a", "price": 1.5, "n": 2, "ok": true}',
             b'{"user": "b", "price": 2, "n": 1, "ok": 0, "k": 7}',
             b'{"ts": 5, "user": "a\\u00e9", "price": 1e300, "n": -1, '
             b'"ok": false, "extra": [1, {"x": null}]}',
             b'[1, 2]', b'{"ts": 1.5}', b'not json', b'']
    write(os.path.join(out, "decode"), "lines", b"\n".join(lines))
    for k, line in enumerate(lines):
        write(os.path.join(out, "decode"), f"line{k}", line)
    rows = {"csv": b"\x00" + b"\n".join([b"0.5,1,-2,3e-3", b"1, 2 ,3,4\r",
                                          b"nan,1,2,3", b"1,2,3", b"", b"x"]),
            "libsvm": b"\x01" + b"\n".join([b"1 1:0.5 3:2", b"0 4:1e3 # c",
                                            b"1", b"2 0:1", b"1 9:1"]),
            "gbdt": b"\x03" + b"\n".join([b"0.5,,2,nan", b"1,2,3,4"]),
            "als": b"\x05" + b"\n".join([b"0,1", b"7,5", b"8,0", b"-1,2"]),
            "recommend": b"\x07" + b"\n".join([b"0", b"3", b"99", b"a"]),
            "header": b"\x08" + b"\n".join([b'"d",c,b,a', b"1,2,3,4",
                                            b"1,2,3"])}
    for name, data in rows.items():
        write(os.path.join(out, "rows"), name, data)
    for k, msg in enumerate(avro_messages()):
        write(os.path.join(out, "avro"), f"msg{k}", msg)


# fuzz_avro.c's schemas: id 2 reads, id 1 wrote with every Avro type
AVRO_BASE = [{"name": "ts", "type": "long"},
             {"name": "user", "type": "string"},
             {"name": "amount", "type": "double"},
             {"name": "n", "type": "int"},
             {"name": "promo", "type": ["null", "boolean"], "default": None}]
AVRO_READER = {"type": "record", "name": "E", "fields": AVRO_BASE}
AVRO_RICH = {"type": "record", "name": "E", "fields": AVRO_BASE + [
    {"name": "c", "type": {"type": "enum", "name": "C",
                           "symbols": ["a", "b", "c"]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "h", "type": {"type": "fixed", "name": "H", "size": 4}},
    {"name": "f", "type": "float"},
    {"name": "raw", "type": "bytes"},
    {"name": "sub", "type": {"type": "record", "name": "S", "fields": [
        {"name": "x", "type": ["null", "int", "string"]}]}}]}


def avro_messages():
    import io
    import struct

    import avro.io
    import avro.schema

    def enc(schema, sid, rec):
        buf = io.BytesIO()
        buf.write(b"\0" + struct.pack(">i", sid))
        avro.io.DatumWriter(avro.schema.parse(json.dumps(schema))).write(
            rec, avro.io.BinaryEncoder(buf))
        return buf.getvalue()
    base = {"ts": 1600000000000, "user": "bob", "amount": 12.5, "n": 7,
            "promo": True}
    yield enc(AVRO_READER, 2, base)
    yield enc(AVRO_READER, 2, dict(base, user="", promo=None, n=-2**31))
    yield enc(AVRO_RICH, 1, dict(base, c="b", tags=["x", "yz"],
                                 attrs={"k": 3, "l": -1}, h=b"abcd", f=1.5,
                                 raw=b"\x00\xff", sub={"x": "s"}))
    yield enc(AVRO_RICH, 1, dict(base, c="a", tags=[], attrs={}, h=b"\0" * 4,
                                 f=-0.0, raw=b"", sub={"x": None}))


if __name__ == "__main__":
    main(sys.argv[1])
