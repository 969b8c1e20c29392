"""The extension's boundary: every C handle is a Python type, models pickle
as their file's bytes, the core's enums and exceptions cross unchanged,
and the lock policy keeps concurrent calls whole."""
import copy
import json
import os
import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp

import streamwise as sw
from streamwise import _sw
from streamwise.hdf5 import write_events

from conftest import separable

EVENTS = {"time": "ts", "time_unit": "ms", "fields": {"user": "str",
                                                      "amount": "float64"}}


def test_no_capsules_every_handle_is_a_type(tmp_path):
    d = _sw.json_decoder(json.dumps(EVENTS))
    assert type(d).__name__ == "Decoder" and type(d) is _sw.Decoder
    assert "3 fields" in repr(d)          # the time is a field too
    path = tmp_path / "e.h5"
    write_events(path, "pay", {"ts": np.arange(3, dtype=np.int64),
                               "user": np.array(["a", "b", "c"]),
                               "amount": np.ones(3)}, EVENTS)
    with _sw.h5_open(str(path), "pay", _sw.H5_BY_ROW, 0, -1) as src:
        assert type(src) is _sw.H5Source
        assert "3 rows" in repr(src)
        assert src.next(10)["user"].tolist() == [b"a", b"b", b"c"]
    # closed: a clear error, never a freed pointer
    with pytest.raises(sw.StateError, match="hdf5 source: closed"):
        src.next(10)
    assert "closed" in repr(src)
    for name in ("Model", "Pipeline", "KafkaSource", "KafkaSink", "Decoder",
                 "H5Source", "H5Writer"):
        tp = getattr(_sw, name)
        with pytest.raises(TypeError):
            tp()                  # made only by the module's functions


def test_h5_writer_with_block_commits_or_abandons(tmp_path):
    path = str(tmp_path / "w.h5")
    with pytest.raises(RuntimeError, match="boom"):
        with _sw.h5_writer(path) as w:
            w.table("pay", json.dumps(EVENTS), "{}", 4, 1024)
            raise RuntimeError("boom")
    assert not os.path.exists(path)       # abandoned: nothing appears
    assert os.listdir(tmp_path) == []     # not even its temporary file
    with _sw.h5_writer(path) as w:
        w.table("pay", json.dumps(EVENTS), "{}", 4, 1024)
    assert os.path.exists(path)
    with pytest.raises(sw.StateError, match="hdf5 writer: closed"):
        w.table("x", json.dumps(EVENTS), "{}", 4, 1024)


def test_kafka_handles_close_and_refuse_after(tmp_path):
    with sw.kafka.local_broker(partitions=1, topics=["t"]) as b:
        with _sw.kafka_sink_open(b.bootstrap, "t", []) as sink:
            sink.send([b'{"ts": 1, "user": "u", "amount": 2.5}'], None,
                      None, -1, [])
            assert sink.flush(10000) == (1, 1, 0)
        with pytest.raises(sw.StateError, match="kafka sink: closed"):
            sink.flush(1000)
        src = _sw.kafka_open(b.bootstrap, "t", None, _sw.POINT_EDGE, 0,
                             _sw.POINT_EDGE, 0, 10000, [])
        assert type(src) is _sw.KafkaSource
        dec = _sw.json_decoder(json.dumps(EVENTS))
        assert src.fetch(10) == 1
        cols, dead = src.decode(dec)
        assert cols["amount"].tolist() == [2.5] and dead == []
        with pytest.raises(TypeError, match="Decoder"):
            src.decode(object())
        src.close()
        src.close()                       # twice is harmless
        with pytest.raises(sw.StateError, match="kafka source: closed"):
            src.slice()


def test_enums_are_the_cores_words():
    # the reason words the runner writes in dead letters, from one table
    assert _sw.INVALID_REASONS == ("", "missing", "wrong_type", "nan",
                                   "bad_time")
    assert sw.pipeline.REASONS == {1: "missing", 2: "wrong_type", 3: "nan",
                                   4: "bad_time"}
    assert _sw.DEAD_REASONS == ("not_json", "not_object", "missing",
                                "wrong_type", "not_avro", "unknown_schema")
    assert (_sw.USERS, _sw.ITEMS) == (0, 1)
    codes = [_sw.COL_I64, _sw.COL_I32, _sw.COL_I8, _sw.COL_F64,
             _sw.COL_F32, _sw.COL_BOOL, _sw.COL_STR]
    assert codes == list(range(7))


def test_bad_column_code_is_refused_by_name():
    p = sw.Pipeline({"events": EVENTS, "features": [
        {"name": "n", "op": "count", "key": "user"}]})
    with pytest.raises(sw.InvalidArgument, match="type 9, expected a COL_"):
        p._core.push([("ts", 9, np.zeros(1, np.int64), 0, None)])


def test_shape_mistakes_raise_shape_error(rng):
    X, y = separable(rng, n=50, d=4)
    est = sw.PassiveAggressiveClassifier().fit(X, y)
    with pytest.raises(sw.ShapeError, match="y has 49 values"):
        est._model.learn(X, y[:-1].astype(float))
    with pytest.raises(ValueError):          # still a ValueError too
        est._model.learn(X, y[:-1].astype(float))
    with pytest.raises(sw.ShapeError, match="X must be 1-D or 2-D"):
        est._model.predict(np.zeros((2, 2, 2)))
    class Torn:                  # a CSR matrix whose indptr lost a row
        csr = sp.csr_matrix(X)
        format, shape = "csr", csr.shape
        indptr, indices, data = csr.indptr[:-1], csr.indices, csr.data

    with pytest.raises(sw.ShapeError, match="CSR indptr has 50 entries, "
                                            "expected 51"):
        est._model.predict(Torn())


def test_model_bytes_round_trip_and_tamper(rng):
    X, y = separable(rng, n=80, d=5, k=3)
    est = sw.SCWClassifier().fit(X, y)
    blob = est._model.to_bytes()
    assert blob[:8] == b"\x89SWM\r\n\x1a\n"
    back = _sw.load_buffer(blob)
    assert back.predict(X).tobytes() == est._model.predict(X).tobytes()
    assert "linear, 5 features, 3 outputs" in repr(back)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(sw.FormatError):
        _sw.load_buffer(bytes(bad))
    with pytest.raises(sw.FormatError):
        _sw.load_buffer(blob[:-1])


def test_every_estimator_pickles_through_the_model(rng, tmp_path):
    X, y = separable(rng, n=120, d=4, k=2)
    R = sp.random(30, 20, density=0.2, format="csr", random_state=1)
    R.data[:] = 1.0
    fitted = [sw.PassiveAggressiveClassifier().fit(X, y),
              sw.PassiveAggressiveRegressor().fit(X, X[:, 0]),
              sw.SCWClassifier().fit(X, y),
              sw.GBDTClassifier(n_estimators=3).fit(X, y),
              sw.GBDTRegressor(n_estimators=3).fit(X, X[:, 1]),
              sw.ALS(factors=4, iterations=2, random_state=0).fit(R)]
    for est in fitted:
        back = pickle.loads(pickle.dumps(est))
        if isinstance(est, sw.ALS):      # could not be pickled before
            assert back.user_factors.tobytes() == est.user_factors.tobytes()
            a, b = est.recommend(np.arange(5), N=3), back.recommend(
                np.arange(5), N=3)
            assert a[0].tolist() == b[0].tolist()
        else:
            assert back.predict(X).tolist() == est.predict(X).tolist()
        dup = copy.deepcopy(est)
        assert dup._model is not est._model
    # a copy learns apart from its original
    est = fitted[0]
    dup = copy.deepcopy(est)
    dup.partial_fit(X[:10], 1 - y[:10])
    assert not np.array_equal(dup.coef_, est.coef_)


def test_a_bundle_pickles_with_its_pipeline(tmp_path):
    spec = {"events": EVENTS, "features": [
        {"name": "n", "op": "count", "key": "user"},
        {"name": "s", "op": "sum", "key": "user", "field": "amount"}]}
    p = sw.Pipeline(spec)
    rng = np.random.default_rng(0)
    ev = {"ts": np.arange(200, dtype=np.int64),
          "user": rng.choice(["a", "b", "c"], 200),
          "amount": rng.random(200)}
    out = p.push(ev)
    X = out.dense
    y = (ev["amount"] > 0.5).astype(int)
    est = sw.PassiveAggressiveClassifier().fit(X, y)
    path = tmp_path / "b.swm"
    est.save(path, pipeline=p)
    loaded = sw.load(path)
    back = pickle.loads(pickle.dumps(loaded))
    assert back._model.pipeline == loaded._model.pipeline
    assert back._model.pipeline is not None


def test_concurrent_predictions_and_exclusive_learning(rng):
    """Predictions take the read lock and run side by side; learning takes
    the write lock: every call sees a whole model, never half an update."""
    X, y = separable(rng, n=20000, d=30)
    est = sw.SCWClassifier().fit(X[:100], y[:100])
    m = est._model
    want = m.predict(X).tobytes()
    errors, seen = [], []

    def reader():
        try:
            for _ in range(10):
                seen.append(m.predict(X).tobytes())
        except Exception as e:            # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen == [want] * 40
    # a learner among readers: each prediction is of a model before or
    # after a whole learn call, one of the snapshots taken in between
    snaps = {want}
    copy_m = m.copy()
    for _ in range(3):
        copy_m.learn(X[:5000], y[:5000].astype(float))
        snaps.add(copy_m.predict(X).tobytes())
    seen.clear()

    def learner():
        try:
            for _ in range(3):
                m.learn(X[:5000], y[:5000].astype(float))
        except Exception as e:            # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=learner))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(seen) <= snaps
    assert m.predict(X).tobytes() == copy_m.predict(X).tobytes()
