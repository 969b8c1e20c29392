"""Converters into HDF5 event datasets and from them to Kafka: the round
trip file -> HDF5 -> topic -> replay returns the same rows and times."""
import datetime as dt
import threading
import time

import numpy as np
import pytest

import streamwise as sw
from streamwise import datasets, replay
from streamwise.kafka import local_broker

from conftest import have_data

SCHEMA = {"time": "ts", "time_unit": "ms",
          "fields": {"user": "str", "item": "int64", "price": "float64",
                     "click": "int8"}}


def generated(n=20_000, seed=0):
    """Events in time order, with ties, several per user."""
    rng = np.random.default_rng(seed)
    return {"ts": np.sort(rng.integers(1_700_000_000_000,
                                       1_700_000_000_000 + n * 20, n)),
            "user": np.char.encode(np.array(
                [f"user-{u}" for u in rng.integers(0, 300, n)])),
            "item": rng.integers(0, 10**12, n),
            "price": np.round(rng.random(n) * 1000, 3),
            "click": (rng.random(n) < 0.1).astype(np.int8)}


def read(path, table, **kw):
    return replay.hdf5(path, table, **kw).read_all()


def replay_all(bootstrap, topic, schema, **kw):
    r = replay.kafka(topic, bootstrap, schema=schema, **kw)
    parts = list(r)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, r


def as_bytes(a):
    return np.char.encode(a.astype(str)) if a.dtype == object else a


def check_round_trip(h, k, key, ms_per_unit):
    """Per partition, the replayed rows are the file's rows of the keys
    that partition holds, in file order, byte for byte; merged, the rows
    come in time order."""
    assert len(k["ts"]) == len(h["ts"])
    assert (k["timestamp"] == k["ts"] * ms_per_unit).all()
    assert (np.diff(k["ts"]) >= 0).all()
    for p in np.unique(k["partition"]).tolist():
        mine = k["partition"] == p
        order = np.argsort(k["offset"][mine])
        rows = np.isin(h[key], np.unique(as_bytes(k[key][mine])))
        for c in h:
            got = as_bytes(k[c][mine][order])
            if got.dtype.kind == "S":
                got = got.astype(h[c].dtype)
            assert got.dtype == h[c].dtype, c
            assert got.tobytes() == h[c][rows].tobytes(), c


def test_generated_events_round_trip_through_a_topic(tmp_path):
    b = generated()
    path = str(tmp_path / "gen.h5")
    sw.hdf5.write_events(path, "click", b, SCHEMA)
    h = read(path, "click")
    with local_broker(topics=[("clicks", 4)]) as broker:
        res = datasets.hdf5_to_topic(path, "click", "clicks",
                                     broker.bootstrap, key="user",
                                     batch_size=3000)
        assert res["acked"] == res["sent"] == 20_000 and not res["failed"]
        assert res["slice"]["rows"] == 20_000
        k, r = replay_all(broker.bootstrap, "clicks", SCHEMA,
                          order="event_time", batch_size=1000)
        check_round_trip(h, k, "user", 1)
        assert r.slice["messages"] == 20_000 and not r.dead_letters
        # the merge gives the same sequence whatever the batch size
        k2, _ = replay_all(broker.bootstrap, "clicks", SCHEMA,
                           order="event_time", batch_size=7777)
        for c in k:
            assert k2[c].tolist() == k[c].tolist()
        # from a mid-stream time: exactly the rows at or after it
        t = int(h["ts"][len(h["ts"]) // 2])
        km, _ = replay_all(broker.bootstrap, "clicks", SCHEMA,
                           start=np.datetime64(t, "ms"), order="event_time")
        later = h["ts"] >= t
        assert len(km["ts"]) == int(later.sum())
        for c in ("ts", "item", "price"):
            assert np.array_equal(np.sort(km[c]), np.sort(h[c][later]))


def test_faults_during_publish_and_replay_lose_and_duplicate_nothing(
        tmp_path):
    b = generated(8000, seed=1)
    path = str(tmp_path / "f.h5")
    sw.hdf5.write_events(path, "click", b, SCHEMA)
    h = read(path, "click")
    with local_broker(topics=[("f", 2)]) as broker:
        broker.push_request_errors("Produce", 3, "NOT_LEADER_FOR_PARTITION")
        broker.push_request_errors("Produce", 2, "_TRANSPORT")
        # one request in flight: the mock does not check the idempotent
        # producer's sequence numbers (docs/kafka.md)
        res = datasets.hdf5_to_topic(
            path, "click", "f", broker.bootstrap, key="user",
            batch_size=1000,
            config={"max.in.flight.requests.per.connection": "1"})
        assert res["acked"] == 8000 and not res["failed"]
        r = replay.kafka("f", broker.bootstrap, schema=SCHEMA,
                         batch_size=500, timeout=20)
        seen = [next(r)]
        broker.set_down()
        time.sleep(2)
        broker.set_up()
        seen += list(r)
        k = {c: np.concatenate([s[c] for s in seen]) for c in seen[0]}
        assert r.slice["complete"] and r.slice["messages"] == 8000
        pairs = sorted(zip(k["ts"].tolist(), k["item"].tolist()))
        assert pairs == sorted(zip(h["ts"].tolist(), h["item"].tolist()))


def test_a_broker_gone_during_publish_is_an_error_not_a_loss(tmp_path):
    path = str(tmp_path / "g.h5")
    sw.hdf5.write_events(path, "click", generated(2000), SCHEMA)
    with local_broker(topics=[("g", 1)]) as broker:
        broker.set_down()
        with pytest.raises(sw.IOError, match="2000 messages failed"):
            datasets.hdf5_to_topic(path, "click", "g", broker.bootstrap,
                                   timeout=3,
                                   config={"message.timeout.ms": "2000"})


def test_csv_to_hdf5_parses_times_and_types(tmp_path):
    csv = tmp_path / "ev.csv"
    csv.write_text("when,user,price,n\n"
                   "2024-03-01 10:00:02,b,1.5,3\n"
                   "2024-03-01 10:00:01,a,2.25,4\n"
                   "2024-03-01 10:00:02,c,,5\n")
    schema = {"time": "when", "time_unit": "s",
              "fields": {"user": "str", "price": "float64", "n": "int32"}}
    path = str(tmp_path / "ev.h5")
    datasets.csv_to_hdf5(str(csv), path, "ev", schema)
    got = read(path, "ev")
    t0 = int(np.datetime64("2024-03-01T10:00:01", "s").astype(np.int64))
    assert got["when"].tolist() == [t0, t0 + 1, t0 + 1]    # stable sort
    assert got["user"].tolist() == [b"a", b"b", b"c"]
    assert got["n"].dtype == np.int32 and got["n"].tolist() == [4, 3, 5]
    assert np.isnan(got["price"][2]) and got["price"][0] == 2.25
    r = replay.hdf5(path, "ev")
    assert r.provenance["source"].endswith("ev.csv")
    assert len(r.provenance["source_sha256"]) == 64
    with pytest.raises(ValueError, match="no column"):
        datasets.csv_to_hdf5(str(csv), path, "ev", dict(
            schema, fields=dict(schema["fields"], other="int8")))


def test_libsvm_to_hdf5_keeps_every_value(tmp_path, rng):
    import scipy.sparse as sp
    X = sp.random(500, 20, density=0.3, random_state=1, format="csr")
    y = np.where(rng.random(500) < 0.5, -1.0, 1.0)
    src = str(tmp_path / "x.svm")
    datasets.write_libsvm(src, X, y)
    path = str(tmp_path / "x.h5")
    datasets.libsvm_to_hdf5(src, path)
    got = read(path, "example")
    assert np.array_equal(got["label"], y)
    dense = np.column_stack([got[f"f{j}"] for j in range(20)])
    assert np.array_equal(dense, X.toarray().astype(np.float32))
    assert got["ts"].tolist() == list(range(500))


@pytest.mark.skipif(not have_data("talkingdata-adtracking-sample"),
                    reason="no ../shared/datasets")
def test_talkingdata_round_trip_file_hdf5_topic_replay(tmp_path):
    path = str(tmp_path / "td.h5")
    datasets.talkingdata_to_hdf5(path)
    c = datasets.load_talkingdata()
    h = read(path, "click")
    for col in h:
        assert h[col].tobytes() == c[col].tobytes(), col
    dl = read(path, "download")
    assert len(dl["ts"]) == int((c["is_attributed"] == 1).sum()) == 227
    schema = datasets.TALKINGDATA_SCHEMA
    with local_broker(topics=[("clicks", 4)]) as broker:
        res = datasets.hdf5_to_topic(path, "click", "clicks",
                                     broker.bootstrap, key="ip")
        assert res["acked"] == 100_000
        k, r = replay_all(broker.bootstrap, "clicks", schema,
                          order="event_time")
        check_round_trip(h, k, "ip", 1000)
        t = int(h["ts"][len(h["ts"]) // 3])
        km, rm = replay_all(
            broker.bootstrap, "clicks", schema, order="event_time",
            start=dt.datetime.fromtimestamp(t, dt.timezone.utc))
        later = h["ts"] >= t
        assert len(km["ts"]) == int(later.sum()) and km["ts"].min() >= t
        for col in h:
            assert np.array_equal(np.sort(km[col]), np.sort(h[col][later]))


@pytest.mark.skipif(not have_data("movielens-100k"),
                    reason="no ../shared/datasets")
def test_movielens_and_airline_convert(tmp_path):
    path = str(tmp_path / "ml.h5")
    datasets.movielens_to_hdf5(path)
    m = read(path, "rating")
    assert len(m["ts"]) == 100_000 and (np.diff(m["ts"]) >= 0).all()
    R, _ = datasets.load_movielens_100k()
    assert R[m["user"][0] - 1, m["item"][0] - 1] == m["rating"][0]
    path = str(tmp_path / "air.h5")
    datasets.airline_to_hdf5(path)
    a = read(path, "flight")
    assert len(a["ts"]) == 100_000
    assert (a["Month"][:2].tolist(), a["Origin"][:2].tolist(),
            a["dep_delayed_15min"][:2].tolist()) == \
        ([8, 4], [b"ATL", b"PIT"], [0, 0])
    assert 0.15 < a["dep_delayed_15min"].mean() < 0.25


def test_topic_to_hdf5_records_each_events_partition_and_offset(tmp_path):
    b = generated(6000, seed=4)
    path = str(tmp_path / "in.h5")
    sw.hdf5.write_events(path, "click", b, SCHEMA)
    with local_broker(topics=[("t", 5)]) as broker:
        datasets.hdf5_to_topic(path, "click", "t", broker.bootstrap,
                               key="user")
        out = str(tmp_path / "back.h5")
        sl = datasets.topic_to_hdf5("t", out, "click", SCHEMA,
                                    broker.bootstrap)
        assert sl["complete"] and sl["messages"] == 6000
        live = [(int(p), int(o), bytes(k).decode())
                for x in replay.kafka("t", broker.bootstrap)
                for p, o, k in zip(x["partition"], x["offset"], x["key"])]
    h = read(out, "click")
    users = [u.decode() if isinstance(u, bytes) else u for u in h["user"]]
    # every event once, where the live topic had it, in each partition's
    # order; and the partition is the key's murmur2 partition
    assert sorted(zip(h["partition"].tolist(), h["offset"].tolist(),
                      users)) == sorted(live)
    assert h["partition"].tolist() == sw.kafka.partition_of(users, 5)
    for p in range(5):
        mine = h["partition"] == p
        assert np.all(np.diff(h["offset"][mine]) > 0)
    assert np.all(np.diff(h["ts"]) >= 0)
    assert sorted(zip(h["ts"].tolist(), h["price"].tolist())) == \
        sorted(zip(b["ts"].tolist(), b["price"].tolist()))
    with pytest.raises(ValueError, match="a field 'offset'"):
        datasets.topic_to_hdf5("t", out, "click",
                               dict(SCHEMA, fields=dict(SCHEMA["fields"],
                                                        offset="int64")),
                               "127.0.0.1:1")
