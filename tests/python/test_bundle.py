"""Bundles: a model file that carries its pipeline, checked at every load;
and the runner's backtest of an HDF5 event file, which must give the
notebook's bits."""
import hashlib
import json
import struct
import subprocess
import zlib

import numpy as np
import pytest

import streamwise as sw
from streamwise import serve

SPEC = {
    "events": {"time": "ts", "fields": {"user": "str", "item": "int64",
                                        "price": "float64", "click": "int8"}},
    "features": [
        {"name": "user_n", "op": "count", "key": "user"},
        {"name": "user_price", "op": "mean", "key": "user", "field": "price",
         "default": -1},
        {"name": "item_ctr", "op": "rate", "key": "item", "field": "click",
         "a": 1, "b": 9},
        {"name": "price", "op": "value", "field": "price"},
        {"name": "user_x_item", "op": "hash", "fields": ["user", "item"],
         "dims": 1024},
    ],
}


def stream(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return {"ts": np.arange(n, dtype=np.int64) * 1000 + 10**15,
            "user": np.array([f"u{u}" for u in rng.integers(0, 80, n)]),
            "item": rng.integers(0, 30, n),
            "price": np.round(rng.gamma(2, 10, n), 2),
            "click": (rng.random(n) < 0.2).astype(np.int8)}


def sections(b):
    """{type: (entry offset, section offset, length)} of a .swm file."""
    n = struct.unpack_from("<I", b, 112)[0]
    out = {}
    for i in range(n):
        e = 128 + 32 * i
        typ = struct.unpack_from("<I", b, e)[0]
        off, ln = struct.unpack_from("<QQ", b, e + 8)
        out[typ] = (e, off, ln)
    return out


def reseal(b, entry=None, off=None, ln=None):
    """Fix a section's CRC (if given), the header CRC and the SHA-256."""
    b = bytearray(b)
    if entry is not None:
        struct.pack_into("<I", b, entry + 24, zlib.crc32(bytes(b[off:off + ln])))
    b[124:128] = struct.pack("<I", zlib.crc32(bytes(b[:124])))
    b[-32:] = hashlib.sha256(bytes(b[:-32])).digest()
    return bytes(b)


@pytest.fixture
def bundle(tmp_path):
    ev = stream()
    p = sw.Pipeline(SPEC, emission="arrival")
    out = p.push(ev)
    clf = sw.PassiveAggressiveClassifier().fit(serve.features(out),
                                               ev["click"])
    path = tmp_path / "m.swm"
    clf.save(path, pipeline=p)
    return path, p, out, clf, ev


def test_the_file_carries_spec_inputs_hashes_and_golden_events(bundle):
    path, p, out, clf, _ = bundle
    b = path.read_bytes()
    schema_hash, spec_hash = struct.unpack_from("<QQ", b, 40)
    assert schema_hash != 0 and spec_hash != 0
    assert 4 in sections(b)                          # PIPELINE
    pipe = json.loads(b[sections(b)[4][1]:][:sections(b)[4][2]])
    assert pipe["inputs"] == p.columns and pipe["sparse"] is True
    assert "emission" not in pipe["spec"]            # the server's choice
    assert len(pipe["golden"]["seq"]) == 64
    m = sw.learners.load(path)
    spec, inputs, sparse = m._fitted().pipeline
    assert json.loads(spec) == SPEC and inputs == p.columns and sparse
    # the same scores as the model on the notebook's matrix, from the one
    # C function that the runner calls
    got = serve.score(m, p, out)
    np.testing.assert_allclose(got, clf.decision_function(
        serve.features(out)), rtol=1e-12)
    text = subprocess.run(["build/bin/streamwise", "inspect", str(path)],
                          capture_output=True, text=True, cwd=_root()).stdout
    assert "inputs       4 dense columns + the hashed block" in text
    assert "golden       64 events replayed from empty state: " \
           "bit-identical" in text


def _root():
    import os
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def test_a_golden_prediction_that_differs_is_refused(bundle, tmp_path):
    path, *_ = bundle
    b = bytearray(path.read_bytes())
    entry, off, ln = sections(b)[4]
    body = bytes(b[off:off + ln])
    at = body.index(b'"out":["') + 8
    digit = body[at + 15:at + 16]
    b[off + at + 15] = ord("0" if digit != b"0" else "1")   # the last bit
    bad = tmp_path / "bad.swm"
    bad.write_bytes(reseal(b, entry, off, ln))
    with pytest.raises(sw.FormatError, match="PIPELINE: golden event 0 "
                       "scores .* the file says"):
        sw.learners.load(bad)


def test_header_hashes_must_be_those_of_the_spec(bundle, tmp_path):
    path, *_ = bundle
    b = bytearray(path.read_bytes())
    b[48] ^= 1
    bad = tmp_path / "bad.swm"
    bad.write_bytes(reseal(b))
    with pytest.raises(sw.FormatError, match="header's spec and schema "
                       "hashes"):
        sw.learners.load(bad)


def test_scoring_with_another_pipeline_or_shape_is_refused(bundle):
    path, p, out, clf, ev = bundle
    other = sw.Pipeline(dict(SPEC, features=SPEC["features"][:3] + [
        {"name": "price", "op": "log1p", "field": "price"},
        SPEC["features"][4]]))
    o2 = other.push(ev)
    with pytest.raises(sw.InvalidArgument, match="is not the one the model "
                       "was trained on"):
        serve.score(clf, other, o2)
    # the emission mode is not part of the features: watermark scores too
    wm = sw.Pipeline(SPEC)
    o3 = wm.push(ev)
    assert len(serve.score(clf, wm, o3)) == len(o3) == len(ev["ts"])
    with pytest.raises(sw.ShapeError, match="the model reads 1028 features"):
        serve.attach(clf, p, inputs=["user_n"])
    with pytest.raises(sw.InvalidArgument, match="'nope' is not a dense "
                       "column"):
        serve.attach(clf, p, inputs=["nope", "user_n", "price",
                                     "item_ctr"])


def test_private_ids_keep_no_golden_events(tmp_path, monkeypatch):
    spec = dict(SPEC, privacy={"fields": ["user"]})
    monkeypatch.setenv("STREAMWISE_PRIVACY_SECRET", "0123456789abcdef-s")
    ev = stream()
    p = sw.Pipeline(spec)
    out = p.push(ev)
    g = sw.GBDTClassifier(n_estimators=5).fit(
        serve.features(out, sparse=False), ev["click"])
    g.save(tmp_path / "p.swm", pipeline=p, sparse=False)
    b = (tmp_path / "p.swm").read_bytes()
    pipe = json.loads(b[sections(b)[4][1]:][:sections(b)[4][2]])
    assert "golden" not in pipe and pipe["spec"]["privacy"] == \
        {"fields": ["user"]}
    assert "0123456789abcdef" not in b.decode("latin-1")
    m = sw.learners.load(tmp_path / "p.swm")
    assert m._fitted().pipeline is not None


def test_hdf5_backtest_gives_the_notebooks_bits(bundle, tmp_path):
    path, _, _, _, _ = bundle
    ev = stream(5000, seed=4)
    h5 = tmp_path / "ev.h5"
    sw.hdf5.write_events(h5, "click", ev, SPEC)
    job = serve.Job(serve.hdf5_source(h5, "click"), path, key="user")
    bt = job.backtest()
    nb = serve.score_stream(sw.learners.load(path),
                            sw.replay.hdf5(h5, "click"), key="user")
    assert len(bt) == len(nb) == 5000
    assert bt["offset"].tolist() == list(range(5000))
    assert np.asarray(bt["prediction"], np.float64).tobytes() == \
        np.asarray(nb["prediction"], np.float64).tobytes()
    assert bt["key"].tolist() == list(ev["user"])
    # a CSV sink says the same
    job = serve.Job(serve.hdf5_source(h5, "click"), path, key="user",
                    sinks=[serve.csv(tmp_path / "o.csv")])
    job.save(tmp_path / "j.json")
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "j.json")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import pandas as pd
    csv = pd.read_csv(tmp_path / "o.csv", float_precision="round_trip")
    assert list(csv.columns) == ["partition", "offset", "time_us", "key",
                                 "prediction", "model", "sha256"]
    assert csv["prediction"].tolist() == bt["prediction"].tolist()
