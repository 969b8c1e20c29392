"""Converters into HDF5 event datasets, and from them to a Kafka topic.

Each ``*_to_hdf5`` writes one or more tables (``/events/<type>``) with the
events sorted by time (stable: ties keep the file's order), a schema in
the pipeline spec's ``"events"`` shape, and provenance naming the source
file and its SHA-256. Real data sets are read in place from the data
directory (see ``loaders.data_dir``); nothing is downloaded.

``hdf5_to_topic`` publishes a table to Kafka as JSON values, each message
stamped with its event time (milliseconds since 1970) so a replay from a
timestamp finds it, and keyed by a field so one key stays in one
partition and in order. ``topic_to_hdf5`` goes the other way and records
each event's partition and offset, so a backtest of one partition reads
what that partition held.
"""
import json
import os

import numpy as np

from . import loaders

__all__ = ["csv_to_hdf5", "libsvm_to_hdf5", "movielens_to_hdf5",
           "talkingdata_to_hdf5", "airline_to_hdf5", "hdf5_to_topic",
           "topic_to_hdf5", "TALKINGDATA_SCHEMA", "MOVIELENS_SCHEMA", "AIRLINE_SCHEMA"]

TALKINGDATA_SCHEMA = {
    "time": "ts", "time_unit": "s",
    "fields": {"ip": "int64", "app": "int64", "device": "int64",
               "os": "int64", "channel": "int64", "is_attributed": "int8",
               "attributed_ts": "int64"}}
MOVIELENS_SCHEMA = {
    "time": "ts", "time_unit": "s",
    "fields": {"user": "int32", "item": "int32", "rating": "int8"}}
AIRLINE_SCHEMA = {
    "time": "ts", "time_unit": "s",
    "fields": {"Month": "int8", "DayofMonth": "int8", "DayOfWeek": "int8",
               "DepTime": "int32", "UniqueCarrier": "str", "Origin": "str",
               "Dest": "str", "Distance": "int32",
               "dep_delayed_15min": "int8"}}


def _source(path, **more):
    from streamwise.track import _sha256
    p = {"source": os.path.realpath(path), "source_sha256": _sha256(path)}
    p.update(more)
    return p


def _write(h5_path, tables, compression, chunk_rows):
    """tables: [(event_type, schema, columns, provenance)]."""
    from streamwise.hdf5 import EventWriter
    with EventWriter(h5_path) as w:
        for event_type, schema, cols, prov in tables:
            t = np.asarray(cols[schema["time"]])
            if len(t) > 1 and (t[1:] < t[:-1]).any():
                order = np.argsort(t, kind="stable")
                cols = {k: np.asarray(v)[order] for k, v in cols.items()}
            w.table(event_type, schema, provenance=prov,
                    compression=compression, chunk_rows=chunk_rows)
            w.append(event_type, cols)
    return h5_path


_PER_S = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def csv_to_hdf5(csv_path, h5_path, event_type, schema, provenance=None,
                compression="gzip", chunk_rows=65536, **read_csv):
    """A CSV file (gzip read directly) into one table. Columns are taken by
    the schema's field names; the time column may hold numbers (already in
    the schema's unit) or date-time text (parsed, as UTC); a CSV without
    the time column gets the row number. Extra keywords go to
    ``pandas.read_csv``."""
    import pandas as pd
    ev = schema.get("events", schema)
    df = pd.read_csv(csv_path, **read_csv)
    missing = [f for f in ev["fields"] if f not in df.columns and
               f != ev["time"]]
    if missing:
        raise ValueError(f"{csv_path}: no column(s) {missing}")
    cols = {f: df[f].to_numpy() for f in ev["fields"] if f != ev["time"]}
    unit = ev.get("time_unit", "us")
    if ev["time"] in df.columns:
        t = df[ev["time"]]
        if t.dtype.kind in "iu":
            cols[ev["time"]] = t.to_numpy(np.int64)
        else:
            t = pd.to_datetime(t, utc=True)
            cols[ev["time"]] = (t.astype("int64") // (10**9 //
                                                      _PER_S[unit])
                                if unit != "ns" else t.astype("int64"))
            cols[ev["time"]] = np.asarray(cols[ev["time"]], np.int64)
    else:
        cols[ev["time"]] = np.arange(len(df), dtype=np.int64)
    prov = _source(csv_path, **(provenance or {}))
    return _write(h5_path, [(event_type, ev, cols, prov)], compression,
                  chunk_rows)


def libsvm_to_hdf5(path, h5_path, event_type="example", n_features=None,
                   compression="gzip", chunk_rows=65536):
    """A LIBSVM file into one table of dense columns ``label`` (float64)
    and ``f0`` ... (float32), one event per line, ``ts`` the line number
    (the format has no time). At most 1,000 features: wider sparse sets
    are better kept as LIBSVM."""
    from .libsvm import load_libsvm
    X, y = load_libsvm(path, n_features=n_features)
    d = X.shape[1]
    if d > 1000:
        raise ValueError(f"{path}: {d} features; the event layout takes at "
                         "most 1,000 dense columns")
    dense = np.asarray(X.todense(), dtype=np.float32)
    fields = {"label": "float64"}
    fields.update({f"f{j}": "float32" for j in range(d)})
    ev = {"time": "ts", "time_unit": "s", "fields": fields}
    cols = {"label": np.asarray(y, np.float64),
            "ts": np.arange(len(y), dtype=np.int64)}
    cols.update({f"f{j}": dense[:, j] for j in range(d)})
    return _write(h5_path, [(event_type, ev, cols, _source(path))],
                  compression, chunk_rows)


def movielens_to_hdf5(h5_path, data=None, compression="gzip",
                      chunk_rows=65536):
    """MovieLens 100K ``u.data`` into table ``rating`` (user, item as in
    the file, rating 1-5, ts in seconds), in time order."""
    src = loaders._file(data, "movielens-100k", "u.data.gz")
    arr = np.loadtxt(src, dtype=np.int64)
    cols = {"user": arr[:, 0], "item": arr[:, 1], "rating": arr[:, 2],
            "ts": arr[:, 3]}
    return _write(h5_path, [("rating", MOVIELENS_SCHEMA, cols,
                             _source(src, name="MovieLens 100K"))],
                  compression, chunk_rows)


def talkingdata_to_hdf5(h5_path, data=None, compression="gzip",
                        chunk_rows=65536):
    """The TalkingData click sample into table ``click`` (ip, app, device,
    os, channel, is_attributed, attributed_ts (-1: none), ts = click_time
    in seconds, UTC) and table ``download`` (the attributed clicks again,
    at their attributed_time), each in time order."""
    c = loaders.load_talkingdata(data)
    src = loaders._file(data, "talkingdata-adtracking-sample",
                        "train_sample.csv.gz")
    ids = ["ip", "app", "device", "os", "channel"]
    clicks = {k: c[k] for k in ids + ["is_attributed", "attributed_ts",
                                      "ts"]}
    got = c["is_attributed"] == 1
    dl = {k: c[k][got] for k in ids}
    dl["ts"] = c["attributed_ts"][got]
    dl_schema = {"time": "ts", "time_unit": "s",
                 "fields": {k: "int64" for k in ids}}
    prov = _source(src, name="TalkingData AdTracking train_sample")
    return _write(h5_path, [("click", TALKINGDATA_SCHEMA, clicks, prov),
                            ("download", dl_schema, dl, prov)],
                  compression, chunk_rows)


def airline_to_hdf5(h5_path, data=None, compression="gzip",
                    chunk_rows=65536):
    """The 100k airline departures into table ``flight``: the file's
    columns (``c-8`` month codes as numbers, dep_delayed_15min Y/N as
    1/0). The file has no year, so ``ts`` is the row number."""
    a = loaders.load_airline(data)
    cols = {k: a[k] for k in AIRLINE_SCHEMA["fields"]}
    cols["ts"] = np.arange(len(a["Month"]), dtype=np.int64)
    src = loaders._file(data, "airline-flight-delays-100k",
                        "flight_delays_train.csv.gz")
    return _write(h5_path, [("flight", AIRLINE_SCHEMA, cols,
                             _source(src, name="airline delays 100k"))],
                  compression, chunk_rows)


def _ms(t, unit):
    t = np.asarray(t, np.int64)
    if unit == "s":
        return t * 1000
    if unit == "ms":
        return t
    return t // (1000 if unit == "us" else 1_000_000)


def _json_rows(cols, fields):
    """One JSON object (bytes) per row, fields in schema order."""
    names = list(fields)
    lists = []
    for f in names:
        a = cols[f]
        if a.dtype.kind == "S":
            lists.append([v.decode("utf-8") for v in a.tolist()])
        elif a.dtype.kind == "b":
            lists.append([bool(v) for v in a.tolist()])
        else:
            lists.append(a.tolist())
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    return [dumps(dict(zip(names, row))).encode() for row in zip(*lists)]


def hdf5_to_topic(h5_path, event_type, topic, bootstrap=None, key=None,
                  start=None, stop=None, batch_size=65536, headers=None,
                  config=None, progress=False, timeout=60.0):
    """Publish table /events/<event_type> to a topic: one JSON message per
    event, its Kafka timestamp the event time in ms, keyed by field ``key``
    (None: no key, the partitioner spreads them). Returns the HDF5 slice
    read and the producer's counts; raises unless every message was
    acknowledged."""
    from streamwise import kafka, replay
    bootstrap = bootstrap or os.environ.get("STREAMWISE_KAFKA_BOOTSTRAP")
    r = replay.hdf5(h5_path, event_type, start=start, stop=stop,
                    batch_size=batch_size, progress=progress)
    fields = dict(r.schema["fields"])
    fields.setdefault(r.schema["time"], "int64")
    if key is not None and key not in fields:
        raise ValueError(f"key {key!r} is not a field of {event_type}")
    sink = kafka.Sink(topic, bootstrap, config=config,
                      headers=dict({"event_type": event_type},
                                   **(headers or {})))
    unit = r.schema.get("time_unit", "us")
    for cols in r:
        keys = None
        if key is not None:
            k = cols[key]
            keys = [v.decode() if isinstance(v, bytes) else str(v)
                    for v in k.tolist()]
        sink.send(_json_rows(cols, fields), keys=keys,
                  timestamps=_ms(cols[r.schema["time"]], unit).tolist())
    counts = sink.flush(timeout)
    return {"slice": r.slice, **counts}


def topic_to_hdf5(topic, h5_path, event_type, schema, bootstrap=None,
                  start="beginning", stop="end", config=None, avro=None,
                  provenance=None, compression="gzip", timeout=30.0):
    """Write a topic's events (JSON, or Avro with ``avro=``, decoded by the
    pipeline spec or "events" entry ``schema``) to table
    /events/<event_type> of a new HDF5 file, with two more fields:
    ``partition`` (int32) and ``offset`` (int64), where each event was. The
    rows of one partition are then exactly that partition's events, in
    its order (a backtest shard equals a live partition; a key's partition
    is ``kafka.partition_of``). Rows are sorted by event time (stable), as
    the layout requires, so the topic is read into memory first. Returns
    the replay's slice; a message that does not decode is not written and
    is counted in ``slice["dead_letters"]``."""
    from streamwise import hdf5, replay
    ev = dict(schema.get("events", schema))
    fields = dict(ev["fields"])
    for name in ("partition", "offset"):
        if name in fields or name == ev["time"]:
            raise ValueError(f"the events have a field {name!r}: "
                             "topic_to_hdf5 adds its own")
    bootstrap = bootstrap or os.environ.get("STREAMWISE_KAFKA_BOOTSTRAP")
    r = replay.kafka(topic, bootstrap, start=start, stop=stop,
                     config=config, schema={"events": ev}, avro=avro,
                     timeout=timeout)
    parts = [b for b in r if len(b["offset"])]
    names = list(fields) + [ev["time"], "partition", "offset"]
    cols = {n: (np.concatenate([b[n] for b in parts]) if parts else
                np.zeros(0)) for n in names}
    cols["partition"] = cols["partition"].astype(np.int32)
    cols["offset"] = cols["offset"].astype(np.int64)
    out = dict(ev, fields=dict(fields, partition="int32", offset="int64"))
    info = dict(provenance or {}, source=f"kafka topic {topic}",
                bootstrap=str(bootstrap))
    hdf5.write_events(h5_path, event_type, cols, out, provenance=info,
                      compression=compression)
    return r.slice
