"""Seed corpora for the fuzzers, made by the project's own code:

    PYTHONPATH=python /usr/bin/python3 tests/fuzz/seeds.py DIR

writes DIR/model (model files of every kind, a bundle), DIR/spec (specs
of every operator), DIR/checkpoint (checkpoints of those pipelines) and
DIR/decode (JSON event lines, good and bad)."""
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


if __name__ == "__main__":
    main(sys.argv[1])
