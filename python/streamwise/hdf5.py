"""HDF5 event datasets: write them (the C core's writer, libhdf5).

An event dataset holds, per event type, a table ``/events/<type>``: one
chunked column dataset per schema field, shuffle+gzip by default, the time
column sorted, and the attributes ``schema`` (the pipeline spec's
``"events"`` entry as JSON), ``provenance`` (JSON), ``layout`` and
``n_rows``. h5py reads the files as they are, and files h5py writes in the
same layout replay through ``streamwise.replay.hdf5``. See docs/hdf5.md.

    with EventWriter("clicks.h5") as w:
        w.table("click", schema, provenance={"source": "..."})
        w.append("click", batch)          # dict of arrays, DataFrame...

or in one call: ``write_events("clicks.h5", "click", batch, schema)``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Self

import numpy as np

from . import _sw
from ._events import columns_of, convert

__all__ = ["EventWriter", "write_events", "COMPRESSION"]

#: compression name -> gzip level (0: none)
COMPRESSION = {None: 0, "none": 0, "gzip": 4}

_INT = {"int64": np.int64, "int32": np.int32, "int8": np.int8}
_FLOAT = {"float64": np.float64, "float32": np.float32}
_CODE = {"int64": _sw.COL_I64, "int32": _sw.COL_I32, "int8": _sw.COL_I8,
         "float64": _sw.COL_F64, "float32": _sw.COL_F32,
         "bool": _sw.COL_BOOL, "str": _sw.COL_STR}


def _events(schema):
    ev = schema.get("events", schema)
    if "time" not in ev or "fields" not in ev:
        raise _sw.InvalidArgument(
            'schema: expected {"time": "ts", "fields": {...}}')
    return ev


def _typed(name, kind, values, unit):
    """(name, code, array, width, None): values in the schema's type,
    refusing what would change a value (NaN or fractions into an integer,
    numbers out of range)."""
    a = np.asarray(values)
    if kind == "str":
        t = convert(name, "str", a)
        if t[4] is not None:
            raise _sw.InvalidArgument(
                f"column '{name}': row {int(np.flatnonzero(t[4])[0])} is not "
                "text")
        return t
    if a.dtype.kind == "M":
        t = convert(name, "int64", a, unit)
        if t[4] is not None:
            raise _sw.InvalidArgument(f"column '{name}': NaT in the time")
        a = t[2]
    if kind == "bool":
        if a.dtype.kind not in "biu":
            raise _sw.InvalidArgument(f"column '{name}': not booleans")
        return (name, _sw.COL_BOOL, np.ascontiguousarray(a.astype(bool)), 0,
                None)
    if kind in _FLOAT:
        if a.dtype.kind not in "biuf":
            raise _sw.InvalidArgument(f"column '{name}': not numbers")
        return (name, _CODE[kind],
                np.ascontiguousarray(a.astype(_FLOAT[kind])), 0, None)
    target = _INT[kind]
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            raise _sw.InvalidArgument(
                f"column '{name}': row {int(np.flatnonzero(bad)[0])} is "
                f"{a[bad][0]!r}, not an integer")
    elif a.dtype.kind not in "biu":
        raise _sw.InvalidArgument(f"column '{name}': not integers "
                                  f"({a.dtype})")
    info = np.iinfo(target)
    if len(a) and (a.min() < info.min or a.max() > info.max):
        raise _sw.InvalidArgument(f"column '{name}': values outside {kind}")
    return (name, _CODE[kind], np.ascontiguousarray(a.astype(target)), 0,
            None)


def _provenance(extra):
    from . import __version__
    p = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
         "writer": f"streamwise {__version__}"}
    p.update(extra or {})
    return json.dumps(p, sort_keys=True, default=str)


class EventWriter:
    """Writes an HDF5 event dataset; the file appears at ``path`` only when
    ``close()`` succeeds (leaving the ``with`` block without an exception).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._w = _sw.h5_writer(self.path)
        self._tables: dict[str, tuple[int, dict[str, str], str]] = {}

    def table(self, event_type: str, schema: Any,
              provenance: dict[str, Any] | None = None,
              compression: str | int | None = "gzip",
              chunk_rows: int = 65536) -> None:
        """Add table /events/<event_type> for events of ``schema`` (a spec
        or its "events" entry). compression: "gzip" (shuffle+gzip level 4,
        the default), None, or a gzip level 1-9."""
        ev = _events(schema)
        level = compression if isinstance(compression, int) \
            else COMPRESSION.get(compression)
        if level is None:
            raise _sw.InvalidArgument(
                f"compression {compression!r}: 'gzip', None or a level "
                "(h5py's LZF is not readable by plain libhdf5)")
        idx = self._w.table(event_type, json.dumps(ev),
                            _provenance(provenance), int(level),
                            int(chunk_rows))
        fields = dict(ev["fields"])
        fields.setdefault(ev["time"], "int64")
        self._tables[event_type] = (idx, fields, ev.get("time_unit", "us"))

    def append(self, event_type: str, batch: Any) -> None:
        """Append events (a dict of arrays, a DataFrame or a structured
        array holding every schema field); times must not go back."""
        if event_type not in self._tables:
            raise _sw.InvalidArgument(f"no table {event_type!r}: add it "
                                      "with table() first")
        idx, fields, unit = self._tables[event_type]
        cols = columns_of(batch)
        missing = [f for f in fields if f not in cols]
        if missing:
            raise _sw.InvalidArgument(
                f"{event_type}: columns missing from the batch: {missing}")
        self._w.append(idx, [_typed(f, k, cols[f], unit)
                             for f, k in fields.items()])

    def close(self) -> None:
        self._w.close()

    def abandon(self) -> None:
        """Drop the file being written; nothing appears at path."""
        self._w.abandon()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.abandon()


def write_events(path: str | os.PathLike, event_type: str, batch: Any,
                 schema: Any, provenance: dict[str, Any] | None = None,
                 compression: str | int | None = "gzip",
                 chunk_rows: int = 65536,
                 sort: bool = True) -> str | os.PathLike:
    """Write one table of events in one call. sort: order the events by
    time first (stable: ties keep their order), as the layout requires."""
    ev = _events(schema)
    cols = columns_of(batch)
    if sort and ev["time"] in cols:
        t = np.asarray(cols[ev["time"]])
        if len(t) > 1 and (t[1:] < t[:-1]).any():
            order = np.argsort(t, kind="stable")
            cols = {k: np.asarray(v)[order] for k, v in cols.items()}
    with EventWriter(path) as w:
        w.table(event_type, ev, provenance=provenance,
                compression=compression, chunk_rows=chunk_rows)
        w.append(event_type, cols)
    return path
