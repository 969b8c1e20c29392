"""HDF5 event datasets: written by the C core, read back by row and by
time, files h5py writes in the same layout, and every bad file refused
with an error naming the problem."""
import datetime as dt
import hashlib
import json
import os

import h5py
import numpy as np
import pytest

import streamwise as sw
from streamwise import replay
from streamwise.hdf5 import EventWriter, write_events

SCHEMA = {"time": "ts", "time_unit": "ms",
          "fields": {"user": "str", "item": "int32", "price": "float64",
                     "w": "float32", "n": "int8", "click": "bool"}}


def events(n=50_000, seed=3):
    rng = np.random.default_rng(seed)
    return {
        "ts": np.sort(rng.integers(1_600_000_000_000, 1_600_100_000_000, n)),
        "user": np.array([f"u{i}" for i in rng.integers(0, 5000, n)]),
        "item": rng.integers(0, 1000, n),
        "price": rng.random(n) * 100,
        "w": rng.random(n).astype(np.float32),
        "n": rng.integers(-100, 100, n),
        "click": rng.random(n) < 0.2,
    }


def expected(b):
    return {"ts": b["ts"], "user": np.char.encode(b["user"]),
            "item": b["item"].astype(np.int32), "price": b["price"],
            "w": b["w"], "n": b["n"].astype(np.int8), "click": b["click"]}


def same(got, want, rows=slice(None)):
    assert set(got) == set(want)
    for k in want:
        w = want[k][rows]
        assert got[k].dtype == w.dtype, k
        assert got[k].tobytes() == w.tobytes(), k


@pytest.fixture(params=["gzip", None])
def written(tmp_path, request):
    b = events()
    path = str(tmp_path / "ev.h5")
    write_events(path, "click", b, SCHEMA, provenance={"source": "test"},
                 compression=request.param, chunk_rows=4096)
    return path, expected(b)


def test_round_trip_by_rows_byte_for_byte(written):
    path, want = written
    r = replay.hdf5(path, "click", batch_size=3000)
    got = r.read_all()
    same(got, want)
    s = r.slice
    assert (s["start"], s["stop"], s["next"], s["rows"]) == \
        (0, len(want["ts"]), len(want["ts"]), len(want["ts"]))
    assert s["complete"] and s["dataset"] == "/events/click"
    with open(path, "rb") as f:
        assert s["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert r.schema["fields"] == SCHEMA["fields"]
    assert r.provenance["source"] == "test"
    same(replay.hdf5(path, "click", start=1234, stop=30_000).read_all(),
         want, slice(1234, 30_000))


@pytest.mark.parametrize("kind", ["datetime64", "datetime", "pandas", "int"])
def test_time_range_is_exactly_the_rows_in_it(written, kind):
    path, want = written
    ts = want["ts"]
    lo, hi = int(ts[len(ts) // 4]), int(ts[3 * len(ts) // 4]) + 1
    conv = {"datetime64": lambda v: np.datetime64(v, "ms"),
            "datetime": lambda v: dt.datetime.fromtimestamp(
                v / 1000, dt.timezone.utc),
            "pandas": lambda v: __import__("pandas").Timestamp(v, unit="ms"),
            "int": lambda v: v}[kind]
    r = replay.hdf5(path, "click", start=conv(lo), stop=conv(hi),
                    by="time" if kind == "int" else None)
    got = r.read_all()
    rows = (ts >= lo) & (ts < hi)
    first = int(np.argmax(rows))
    same(got, want, slice(first, first + int(rows.sum())))
    assert r.slice["start"] == first and r.slice["complete"]
    # open-ended: from a time to the end
    got = replay.hdf5(path, "click", start=conv(lo),
                      by="time" if kind == "int" else None).read_all()
    assert len(got["ts"]) == int((ts >= lo).sum())


def test_replayed_batches_give_the_pipeline_the_same_features(written):
    path, want = written
    spec = {"events": SCHEMA, "features": [
        {"name": "n_user", "op": "count", "key": ["user"]},
        {"name": "mu", "op": "mean", "key": ["user"], "field": "price"},
        {"name": "ix", "op": "hash", "fields": ["item", "user"],
         "dims": 1024}]}
    direct = sw.Pipeline(spec).push(want)
    p = sw.Pipeline(spec)
    outs = [p.push(b) for b in replay.hdf5(path, "click", batch_size=7000)]
    assert np.concatenate([o.dense for o in outs]).tobytes() == \
        direct.dense.tobytes()


def test_c_path_counts_every_row(written):
    path, want = written
    assert replay.hdf5(path, "click", start=10).count() == \
        len(want["ts"]) - 10


def test_h5py_reads_what_streamwise_writes(written):
    path, want = written
    with h5py.File(path, "r") as f:
        g = f["events/click"]
        assert json.loads(g.attrs["schema"]) == SCHEMA
        assert g.attrs["n_rows"] == len(want["ts"])
        for k in want:
            same({k: g[k][:]}, {k: want[k]})


def h5py_table(path, cols, schema, sorted_mark=False, **kw):
    with h5py.File(path, "w") as f:
        g = f.create_group("events/click")
        if schema is not None:
            g.attrs["schema"] = schema if isinstance(schema, str) \
                else json.dumps(schema)
        if sorted_mark:
            g.attrs["time_sorted"] = 1
        for k, v in cols.items():
            g.create_dataset(k, data=v, chunks=True, **kw)


def test_files_h5py_writes_in_the_layout_read(tmp_path):
    b = expected(events(20_000))
    path = str(tmp_path / "h5py.h5")
    # numbers in other widths than the schema's, bool as h5py stores it,
    # gzip without shuffle, a whole spec in the schema attribute
    cols = dict(b, item=b["item"].astype(np.int64), w=b["w"],
                n=b["n"].astype(np.int16))
    h5py_table(path, cols, {"events": SCHEMA, "features": []},
               compression="gzip")
    got = replay.hdf5(path, "click", batch_size=5000).read_all()
    same(got, b)
    t = int(b["ts"][5000])
    got = replay.hdf5(path, "click", start=np.datetime64(t, "ms")).read_all()
    assert len(got["ts"]) == int((b["ts"] >= t).sum())


def test_unsorted_time_column_is_an_error_naming_the_row(tmp_path):
    b = expected(events(1000))
    b["ts"] = b["ts"].copy()
    b["ts"][700] = b["ts"][0] - 1
    path = str(tmp_path / "unsorted.h5")
    h5py_table(path, b, SCHEMA)
    with pytest.raises(sw.FormatError, match="not sorted at row 700"):
        replay.hdf5(path, "click", start=np.datetime64(0, "ms"))
    with pytest.raises(sw.FormatError, match="not sorted at row 700"):
        replay.hdf5(path, "click").read_all()
    # a file that claims to be sorted is still checked batch by batch
    h5py_table(path, b, SCHEMA, sorted_mark=True)
    with pytest.raises(sw.FormatError, match="not sorted at row 700"):
        replay.hdf5(path, "click", batch_size=100).read_all()


@pytest.mark.parametrize("case,match", [
    ("no_schema", "no 'schema' attribute"),
    ("bad_json", "'schema' attribute: not JSON"),
    ("bad_type", "fields.user: unknown type 'text' \\(int64, int32, int8, "
                 "float64, float32, bool, str\\)"),
    ("bad_unit", "time_unit: 'minutes', expected us, ms, s or ns"),
    ("no_time", "the time column 'ts' is missing"),
    ("no_column", "the schema's column 'price' is missing"),
    ("vlen", "variable-length strings"),
    ("wrong_kind", "'item' is stored as string, the schema says int32"),
    ("lengths", "has 999 rows"),
])
def test_bad_tables_name_the_problem(tmp_path, case, match):
    b = expected(events(1000))
    schema = SCHEMA
    if case == "no_schema":
        schema = None
    elif case == "bad_json":
        schema = "{not json"
    elif case == "bad_type":
        schema = dict(SCHEMA, fields=dict(SCHEMA["fields"], user="text"))
    elif case == "bad_unit":
        schema = dict(SCHEMA, time_unit="minutes")
    elif case == "no_time":
        del b["ts"]
    elif case == "no_column":
        del b["price"]
    elif case == "vlen":
        b["user"] = np.array([u.decode() for u in b["user"]], dtype=object)
    elif case == "wrong_kind":
        b["item"] = b["user"]
    elif case == "lengths":
        b["w"] = b["w"][:999]
    path = str(tmp_path / "bad.h5")
    if case == "vlen":
        with h5py.File(path, "w") as f:
            g = f.create_group("events/click")
            g.attrs["schema"] = json.dumps(schema)
            for k, v in b.items():
                g.create_dataset(k, data=v, dtype=h5py.string_dtype()
                                 if v.dtype == object else None)
    else:
        h5py_table(path, b, schema)
    with pytest.raises(sw.FormatError, match=match):
        replay.hdf5(path, "click").read_all()


def test_missing_table_lists_the_tables(written):
    path, _ = written
    with pytest.raises(sw.InvalidArgument, match=r"tables: click"):
        replay.hdf5(path, "view")


def test_truncated_and_corrupt_files_are_refused(written, tmp_path):
    path, _ = written
    data = open(path, "rb").read()
    cut = str(tmp_path / "cut.h5")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(sw.FormatError, match="truncated"):
        replay.hdf5(cut, "click")
    # flip bytes inside column data: Fletcher-32 catches it on read
    bad = bytearray(data)
    for at in range(len(data) // 3, len(data) // 3 + 64):
        bad[at] ^= 0x5A
    flip = str(tmp_path / "flip.h5")
    with open(flip, "wb") as f:
        f.write(bytes(bad))
    with pytest.raises(sw.FormatError):
        replay.hdf5(flip, "click").read_all()


def test_slice_refuses_a_file_changed_after_opening(tmp_path):
    path = str(tmp_path / "a.h5")
    write_events(path, "click", events(100), SCHEMA)
    r = replay.hdf5(path, "click")
    r.read_all()
    write_events(path, "click", events(200), SCHEMA)   # replaced
    with pytest.raises(sw.IOError, match="changed since it was opened"):
        r.slice


def test_writer_refuses_bad_events_and_leaves_no_file(tmp_path):
    path = str(tmp_path / "w.h5")
    b = events(100)
    with pytest.raises(sw.InvalidArgument, match="goes back at row"):
        write_events(path, "click", b | {"ts": b["ts"][::-1].copy()}, SCHEMA,
                     sort=False)
    assert not os.path.exists(path)
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    bad = b | {"item": np.where(np.arange(100) == 7, np.nan, 1.0)}
    with pytest.raises(sw.InvalidArgument, match="row 7"):
        write_events(path, "click", bad, SCHEMA)
    with pytest.raises(sw.InvalidArgument, match="values outside int8"):
        write_events(path, "click", b | {"n": np.full(100, 300)}, SCHEMA)
    with pytest.raises(sw.InvalidArgument, match="missing"):
        write_events(path, "click", {k: v for k, v in b.items()
                                     if k != "price"}, SCHEMA)
    with pytest.raises(sw.InvalidArgument, match="LZF"):
        write_events(path, "click", b, SCHEMA, compression="lzf")
    with pytest.raises(RuntimeError):
        with EventWriter(path) as w:
            w.table("click", SCHEMA)
            w.append("click", b)
            raise RuntimeError("the job died")
    assert not os.path.exists(path)
    # unsorted input is sorted (stably) by default
    write_events(path, "click", b | {"ts": b["ts"][::-1].copy()}, SCHEMA)
    got = replay.hdf5(path, "click").read_all()
    assert (np.diff(got["ts"]) >= 0).all()


def test_several_tables_and_appends(tmp_path):
    path = str(tmp_path / "two.h5")
    a, b = events(3000, 1), events(2000, 2)
    with EventWriter(path) as w:
        w.table("click", SCHEMA, compression=None)
        w.table("view", SCHEMA, compression=9)
        for lo in range(0, 3000, 1000):
            w.append("click", {k: v[lo:lo + 1000] for k, v in a.items()})
        w.append("view", b)
    same(replay.hdf5(path, "click").read_all(), expected(a))
    same(replay.hdf5(path, "view").read_all(), expected(b))


def test_progress_bar_counts_the_rows(written, capsys):
    path, want = written
    r = replay.hdf5(path, "click", progress=True)
    assert sum(len(b["ts"]) for b in r) == len(want["ts"])
    assert "50000/50000" in capsys.readouterr().err
