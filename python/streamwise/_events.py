"""The events of a pipeline spec as Python hands them to the core, in one
place: batches as named columns, values converted to the core's column
types (with a reason for each one that cannot be), and decoders of
message bytes into those columns (JSON or Avro). Used by pipeline, hdf5,
replay and kafka alike."""
import numpy as np

from . import _sw

_NP = {np.dtype("int64"): _sw.COL_I64, np.dtype("int32"): _sw.COL_I32,
       np.dtype("int8"): _sw.COL_I8, np.dtype("float64"): _sw.COL_F64,
       np.dtype("float32"): _sw.COL_F32, np.dtype("bool"): _sw.COL_BOOL}
_MISSING, _WRONG, _BAD_TIME = (_sw.INVALID_MISSING, _sw.INVALID_TYPE,
                               _sw.INVALID_TIME)
_UNIT = {"us": 1, "ms": 1_000, "s": 1_000_000, "ns": 0}


def columns_of(batch):
    """A batch as {name: 1-D array}: a dict of arrays, a pandas DataFrame or
    a numpy structured array."""
    if hasattr(batch, "dtype") and batch.dtype.names:
        return {n: batch[n] for n in batch.dtype.names}
    if hasattr(batch, "columns") and hasattr(batch, "to_numpy"):
        return {str(c): batch[c].to_numpy() for c in batch.columns}
    if isinstance(batch, dict):
        return {str(k): v for k, v in batch.items()}
    raise TypeError(f"a batch is a dict of arrays, a DataFrame or a "
                    f"structured array, not {type(batch).__name__}")


def convert(name, kind, values, time_unit=None):
    """(name, type code, array, width, bad) for the core: typed values and
    per-row reasons for those that could not be converted."""
    a = np.asarray(values)
    n = len(a)
    if kind == "str":
        # text is NUL-padded in the core: a NUL inside would cut it, and
        # "a\0x" and "a\0y" would be one key; such values are refused
        if a.dtype.kind in "SU":
            # numpy pads with NULs too: a NUL with a character after it is
            # one inside the value
            width = a.dtype.itemsize // (1 if a.dtype.kind == "S" else 4)
            codes = np.ascontiguousarray(a).view(
                np.uint8 if a.dtype.kind == "S" else np.uint32).reshape(
                    n, max(width, 1)) if n and width else np.zeros((n, 1))
            later = np.cumsum(codes[:, ::-1] != 0, axis=1)[:, ::-1] > 0
            bad = ((codes == 0) & later).any(axis=1).astype(np.uint8) * _WRONG
            enc = a if a.dtype.kind == "S" else np.char.encode(a, "utf-8")
            return (name, _sw.COL_STR, enc, max(enc.dtype.itemsize, 1),
                    bad if bad.any() else None)
        bad = np.zeros(n, dtype=np.uint8)
        items = []
        for i, v in enumerate(a.tolist()):
            if isinstance(v, (str, bytes)) and \
                    ("\0" if isinstance(v, str) else b"\0") in v:
                items.append(b"")
                bad[i] = _WRONG
            elif isinstance(v, str):
                items.append(v.encode("utf-8"))
            elif isinstance(v, bytes):
                items.append(v)
            else:
                items.append(b"")
                bad[i] = _MISSING if v is None or (isinstance(v, float)
                                                   and v != v) else _WRONG
        enc = np.array(items, dtype=bytes) if items else np.zeros(0, "S1")
        return (name, _sw.COL_STR, enc, max(enc.dtype.itemsize, 1),
                bad if bad.any() else None)
    if a.dtype.kind == "M":   # datetime64: to the spec's time unit
        us = a.astype("datetime64[us]").astype(np.int64)
        bad = np.isnat(a).astype(np.uint8) * _BAD_TIME
        if time_unit == "ns":
            us = a.astype("datetime64[ns]").astype(np.int64)
        elif time_unit in ("ms", "s"):
            us = us // _UNIT[time_unit]
        return (name, _sw.COL_I64, us, 0, bad if bad.any() else None)
    if a.dtype.kind == "f" and kind in ("int64", "int32", "int8", "bool"):
        # 3.0 is the integer 3; 3.5 is no value of an integer field
        frac = np.isfinite(a) & (a != np.floor(a))
        if frac.any():
            return (name, _NP.get(a.dtype, _sw.COL_F64),
                    np.ascontiguousarray(a, dtype=a.dtype
                                         if a.dtype in _NP else np.float64),
                    0, frac.astype(np.uint8) * _WRONG)
    if a.dtype in _NP:
        return (name, _NP[a.dtype], np.ascontiguousarray(a), 0, None)
    if a.dtype.kind in "iu":
        return (name, _sw.COL_I64, a.astype(np.int64), 0, None)
    if a.dtype.kind == "f":
        return (name, _sw.COL_F64, a.astype(np.float64), 0, None)
    # objects: number by number; None is missing, text is the wrong type
    out = np.zeros(n, dtype=np.float64)
    bad = np.zeros(n, dtype=np.uint8)
    for i, v in enumerate(a.tolist()):
        if v is None:
            bad[i] = _MISSING
        elif isinstance(v, (bool, int, float, np.number)):
            out[i] = float(v)
        else:
            bad[i] = _WRONG
    return (name, _sw.COL_F64, out, 0, bad if bad.any() else None)


def make_decoder(schema, avro):
    """The C decoder of values into the schema's columns: JSON, or Avro
    when avro is given; None without a schema."""
    import json
    if schema is None:
        if avro is not None:
            raise _sw.InvalidArgument("avro= needs schema= (the events "
                                      "schema the records decode into)")
        return None
    d = _sw.json_decoder(json.dumps(schema.get("events", schema)))
    if avro is not None:
        avro_decoder(d, avro)
    return d


def avro_decoder(decoder, avro):
    """avro: {"schema": the Avro record schema to read with (dict or JSON
    text), "framing": "confluent" (the default: magic byte and schema id)
    or "raw", "writers": {schema id (-1 for raw): the schema the records
    were written with}}."""
    import json

    def text(s):
        return s if isinstance(s, str) else json.dumps(s)
    framing = avro.get("framing", "confluent")
    if framing not in ("confluent", "raw"):
        raise _sw.InvalidArgument(f"avro framing {framing!r}: 'confluent' "
                                  "or 'raw'")
    writers = [(int(k), text(v)) for k, v in
               (avro.get("writers") or {}).items()]
    decoder.avro(text(avro["schema"]),
                 _sw.FRAMING_CONFLUENT if framing == "confluent"
                 else _sw.FRAMING_RAW, writers)
