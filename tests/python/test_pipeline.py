"""Feature pipelines against the pure-Python reference on randomized
streams with out-of-order, late and invalid events; batching, checkpoints,
spec errors and profiles."""
import math
import os

import numpy as np
import pytest

import streamwise as sw
from streamwise.reference import pipeline_reference

SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "str", "item": "int64", "price": "float64",
                          "click": "int8"}},
    "features": [
        {"name": "user_n", "op": "count", "key": ["user"]},
        {"name": "user_price_sum", "op": "sum", "key": "user",
         "field": "price"},
        {"name": "user_price_mu", "op": "mean", "key": ["user"],
         "field": "price"},
        {"name": "user_price_var", "op": "var", "key": ["user"],
         "field": "price"},
        {"name": "user_price_min", "op": "min", "key": ["user"],
         "field": "price"},
        {"name": "user_price_max", "op": "max", "key": ["user"],
         "field": "price"},
        {"name": "user_last_price", "op": "last", "key": ["user"],
         "field": "price"},
        {"name": "user_clicks_h", "op": "decayed_sum", "key": ["user"],
         "field": "click", "half_life": "1h"},
        {"name": "user_events_10m", "op": "decayed_count", "key": ["user"],
         "half_life": "10m"},
        {"name": "user_since", "op": "time_since_last", "key": ["user"]},
        {"name": "user_ctr", "op": "rate", "key": ["user"], "field": "click",
         "a": 1, "b": 20},
        {"name": "user_clicks_1m", "op": "sum", "key": ["user"],
         "field": "click", "window": {"tumbling": "1m"}},
        {"name": "user_n_1m", "op": "count", "key": ["user"],
         "window": {"tumbling": "1m"}},
        {"name": "user_item_n", "op": "count", "key": ["user", "item"]},
        {"name": "item_price_mu_5m", "op": "mean", "key": ["item"],
         "field": "price", "window": {"tumbling": "5m"}},
        {"name": "item_x_user", "op": "hash", "fields": ["item", "user"],
         "dims": 1024},
        {"name": "item", "op": "hash", "fields": ["item"], "dims": 64},
    ],
    "watermark": {"out_of_orderness": "5s", "allowed_lateness": "1m"},
}


def stream(seed, n=3000, users=40, items=12, bad=True):
    """Events in arrival order: time mostly rising with jitter, a few very
    late, a few invalid."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.exponential(400_000, n)).astype(np.int64)
    jitter = rng.integers(-8_000_000, 8_000_000, n)
    ts = base + jitter
    very_late = rng.random(n) < 0.03
    ts[very_late] -= 400_000_000
    ts = np.maximum(ts, 0)
    events = []
    for i in range(n):
        e = {"ts": int(ts[i]), "user": f"u{rng.integers(users)}",
             "item": int(rng.integers(items)),
             "price": float(np.round(rng.gamma(2.0, 10.0), 2)),
             "click": int(rng.random() < 0.1)}
        if bad and rng.random() < 0.02:
            kind = rng.integers(4)
            if kind == 0:
                e["price"] = None
            elif kind == 1:
                e["price"] = float("nan")
            elif kind == 2:
                e["price"] = "12.5"
            else:
                e["ts"] = -5
        events.append(e)
    return events


def as_batch(events):
    cols = {}
    for k in ("ts", "user", "item", "price", "click"):
        vals = [e.get(k) for e in events]
        if k in ("user", "price") or any(v is None or isinstance(v, str)
                                        for v in vals):
            cols[k] = np.array(vals, dtype=object)
        else:
            cols[k] = np.array(vals)
    cols["click"] = cols["click"].astype(np.int8)
    return cols


def run(spec, events, sizes):
    """Push events in batches of the given sizes, then flush; concatenate."""
    p = sw.Pipeline(spec)
    outs, i, late, invalid = [], 0, [], []
    for size in sizes:
        if i >= len(events):
            break
        o = p.push(as_batch(events[i:i + size]))
        late.extend((o.late + i).tolist())
        invalid.extend(zip((o.invalid["rows"] + i).tolist(),
                           o.invalid["reason"].tolist()))
        outs.append(o)
        i += size
    outs.append(p.flush())
    dense = np.concatenate([o.dense for o in outs])
    seq = np.concatenate([o.index for o in outs])
    t = np.concatenate([o.event_time for o in outs])
    return p, dense, seq, t, outs, late, invalid


def batch_sizes(rng, n):
    out = []
    while sum(out) < n:
        out.append(int(rng.integers(1, 400)))
    return out


def against_reference(spec, events, seed, inexact, rtol):
    """Run spec over events in random batches and through the reference:
    the same rows in the same order, the same late and invalid events, and
    the same values - bit for bit except in the columns starting with a
    prefix in inexact, which must agree within rtol. Returns what run()
    returns and the reference's (rows, late, invalid)."""
    ref = rows, late, invalid = pipeline_reference(spec, events)
    rng = np.random.default_rng(seed)
    got = p, dense, seq, t, outs, got_late, got_invalid = run(
        spec, events, batch_sizes(rng, len(events)))
    assert seq.tolist() == [r[0] for r in rows]
    assert t.tolist() == [r[1] for r in rows]
    assert got_late == late and got_invalid == invalid
    cols = p.columns
    want = np.array([[r[2][c] for c in cols] for r in rows])
    np.testing.assert_array_equal(np.isnan(dense), np.isnan(want))
    exact = [i for i, c in enumerate(cols) if not c.startswith(inexact)]
    np.testing.assert_array_equal(dense[:, exact], want[:, exact])
    np.testing.assert_allclose(dense, want, rtol=rtol, atol=rtol,
                               equal_nan=True)
    return got, ref


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference(seed):
    events = stream(seed)
    # sums in the same order give the same bits; decays go through exp2
    (p, dense, seq, t, outs, _, _), (rows, late, invalid) = \
        against_reference(SPEC, events, seed,
                          ("user_clicks_h", "user_events_10m"), 1e-12)
    assert {r for _, r in invalid} == {"missing", "nan", "wrong_type",
                                      "bad_time"}
    st = p.stats
    assert st["late"] == len(late) and st["invalid"] == len(invalid)
    assert st["emitted"] == len(rows) and st["buffered"] == 0
    # the emitted events carry their own columns (labels included)
    ev = {k: np.concatenate([o.events[k] for o in outs if len(o)])
          for k in ("click", "item")}
    assert ev["click"].tolist() == [events[s]["click"] for s in seq]


@pytest.mark.parametrize("extra", [{}, {"ttl": "20s"}, {"max_keys": 15},
                                   {"ttl": "20s", "max_keys": 15},
                                   {"max_keys": 300}])
def test_output_does_not_depend_on_batching(extra):
    """One batch is drained in groups (each feature run over many events);
    one event at a time is the per-event order: the same bits, also when
    keys are dropped for a budget or start afresh after a ttl mid-group.
    A budget of 300 is reached by the user x item table (480 keys) in the
    middle of the one batch's drain, which then goes event by event."""
    spec = dict(SPEC, **extra)
    events = stream(5, n=3000)
    rng = np.random.default_rng(0)
    a = run(spec, events, [len(events)])
    b = run(spec, events, [1] * len(events))
    c = run(spec, events, batch_sizes(rng, len(events)))
    if extra:
        # the budget dropped keys, the ttl started keys afresh
        plain = run(SPEC, events, [len(events)])
        assert a[1].tobytes() != plain[1].tobytes()
        assert ("max_keys" not in extra or
                a[0].stats["keys"] < plain[0].stats["keys"])
    for other in (b, c):
        assert other[2].tolist() == a[2].tolist()
        assert other[1].tobytes() == a[1].tobytes()
        sa = np.concatenate([o.sparse.toarray() for o in a[4] if len(o)])
        so = np.concatenate([o.sparse.toarray() for o in other[4] if len(o)])
        assert (sa == so).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kill_and_restore_is_byte_identical(tmp_path, seed):
    events = stream(seed, n=2000)
    rng = np.random.default_rng(seed)
    sizes = batch_sizes(rng, len(events))
    whole = run(SPEC, events, sizes)
    cuts = set(rng.choice(len(sizes), size=3, replace=False).tolist())
    p = sw.Pipeline(SPEC)
    dense, i = [], 0
    for k, size in enumerate(sizes):
        if i >= len(events):
            break
        dense.append(p.push(as_batch(events[i:i + size])).dense)
        i += size
        if k in cuts:
            path = tmp_path / f"ck{k}.swc"
            p.checkpoint(path, source_position=str(i))
            del p                                   # the process "dies"
            p, pos = sw.Pipeline.restore(path)
            assert int(pos) == i
    dense.append(p.flush().dense)
    assert np.concatenate(dense).tobytes() == whole[1].tobytes()


def test_checkpoint_refuses_damage(tmp_path):
    p = sw.Pipeline(SPEC)
    p.push(as_batch(stream(0, n=200, bad=False)))
    path = tmp_path / "ck.swc"
    p.checkpoint(path, b"offset=200")
    blob = bytearray(path.read_bytes())
    for cut in (len(blob) - 1, len(blob) // 2, 10):
        (tmp_path / "bad.swc").write_bytes(bytes(blob[:cut]))
        with pytest.raises(sw.FormatError):
            sw.Pipeline.restore(tmp_path / "bad.swc")
    blob[len(blob) // 3] ^= 1
    (tmp_path / "bad.swc").write_bytes(bytes(blob))
    with pytest.raises(sw.FormatError, match="checksum mismatch"):
        sw.Pipeline.restore(tmp_path / "bad.swc")
    assert not list(tmp_path.glob("ck.swc.tmp.*"))


@pytest.mark.parametrize("spec_change,message", [
    (lambda s: s["features"][3].update(field="prcie"),
     r"features\[3\]\.field: 'prcie' is not an event field"),
    (lambda s: s["features"][0].update(op="median"),
     r"features\[0\]\.op: unknown operator 'median'"),
    (lambda s: s["events"]["fields"].update(user="string"),
     r"events\.fields\.user: unknown type 'string'"),
    (lambda s: s["features"][11].update(window={"sliding": "1m"}),
     r"features\[11\]\.window"),
    (lambda s: s["features"][7].update(half_life="soon"),
     r"features\[7\]\.half_life"),
    (lambda s: s["features"][1].update(name="user_n"),
     r"features\[1\]\.name: 'user_n' is used twice"),
    (lambda s: s.update(windows={}), r"windows: not a spec section"),
    (lambda s: s["features"][0].update(field="price"),
     r"features\[0\]\.field: not a setting of count"),
    (lambda s: s["features"][2].update(field="user"),
     r"'user' is a string; mean needs numbers"),
    (lambda s: s["features"][10].update(a=-1),
     r"features\[10\]\.a, b: the Beta prior"),
])
def test_spec_errors_name_the_path(spec_change, message):
    import copy
    spec = copy.deepcopy(SPEC)
    spec_change(spec)
    with pytest.raises(sw.InvalidArgument, match=message):
        sw.Pipeline(spec)


def test_late_and_invalid_are_routed_not_dropped():
    spec = {"events": {"time": "ts", "fields": {"k": "int64", "x": "float64"}},
            "features": [{"name": "n", "op": "count", "key": "k"}],
            "watermark": {"out_of_orderness": "1s"}}
    p = sw.Pipeline(spec)
    o = p.push({"ts": [10_000_000, 5_000_000, 9_500_000, 20_000_000],
                "k": [1, 1, 1, 1], "x": [1.0, 2.0, np.nan, 3.0]})
    assert o.late.tolist() == [1]                   # 5 s < 10 s - 1 s
    assert o.invalid["rows"].tolist() == [2]
    assert o.invalid["reason"].tolist() == ["nan"]
    out = [o] + [p.flush()]
    assert sum(len(x) for x in out) == 2
    assert p.stats["late"] == 1 and p.stats["nan"] == 1
    # a column the batch lacks altogether is named, with a near miss
    with pytest.raises(sw.InvalidArgument,
                       match=r"no column 'x' .* misspelled\? 'xx' for 'x'"):
        p.push({"ts": [30_000_000], "k": [1], "xx": [1.0]})
    with pytest.raises(sw.InvalidArgument, match=r"no column 'x'"):
        p.push({"ts": [30_000_000], "k": [1]})
    assert p.stats["arrivals"] == 4                 # nothing was taken


def test_profile_and_ttl():
    spec = {"events": {"time": "ts", "time_unit": "s",
                       "fields": {"user": "str", "amount": "float64"}},
            "features": [{"name": "n", "op": "count", "key": "user"},
                         {"name": "total", "op": "sum", "key": "user",
                          "field": "amount"},
                         {"name": "since", "op": "time_since_last",
                          "key": "user"}],
            "ttl": "1h"}
    p = sw.Pipeline(spec)
    p.push({"ts": [0, 10, 20], "user": ["a", "a", "b"],
            "amount": [5.0, 7.0, 1.0]})
    p.flush()
    assert p.state({"user": "a"}) == {"n": 2.0, "total": 12.0, "since": 10.0}
    gone = p.state({"user": "nobody"})
    assert gone["n"] == 0.0 and math.isnan(gone["since"])
    # a key idle for more than the ttl starts afresh
    o = p.push({"ts": [20 + 7200], "user": ["a"], "amount": [1.0]})
    o2 = p.flush()
    rows = np.concatenate([o.dense, o2.dense])
    assert rows[0].tolist()[:2] == [0.0, 0.0]
    with pytest.raises(sw.InvalidArgument, match="not event fields"):
        p.state({"colour": "red"})


def test_many_keys_with_ttl_eviction_and_restore(tmp_path):
    """Tables past a few MiB grow by remapping and evict idle keys: counts
    and sums stay those of a vectorized numpy reference (earlier events of
    the key with no gap longer than the ttl), through a restore."""
    rng = np.random.default_rng(7)
    n, keys, ttl_s = 600_000, 250_000, 20
    ts = np.arange(n, dtype=np.int64) * 100_000           # 0.1 s apart
    user = rng.integers(0, keys, n).astype(np.int64)
    amount = rng.integers(0, 100, n).astype(np.float64)
    spec = {"events": {"time": "ts", "time_unit": "us",
                       "fields": {"user": "int64", "amount": "float64"}},
            "features": [{"name": "n", "op": "count", "key": "user"},
                         {"name": "total", "op": "sum", "key": "user",
                          "field": "amount"}],
            "ttl": f"{ttl_s}s"}
    order = np.lexsort((ts, user))
    u, t, a = user[order], ts[order], amount[order]
    fresh = np.ones(n, bool)
    fresh[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] > ttl_s * 1_000_000)
    run_id = np.cumsum(fresh) - 1
    starts = np.flatnonzero(fresh)
    idx = np.arange(n)
    want_n = np.empty(n)
    want_n[order] = idx - starts[run_id]
    csum = np.cumsum(a) - a                       # sum of earlier rows
    want_total = np.empty(n)
    want_total[order] = csum - csum[starts[run_id]]

    batch = {"ts": ts, "user": user, "amount": amount}
    half = n // 2
    p = sw.Pipeline(spec)
    outs = [p.push({k: v[:half] for k, v in batch.items()}).dense]
    p.checkpoint(tmp_path / "ck.swc", b"half")
    del p
    p, pos = sw.Pipeline.restore(tmp_path / "ck.swc")
    assert pos == b"half"
    outs.append(p.push({k: v[half:] for k, v in batch.items()}).dense)
    outs.append(p.flush().dense)
    got = np.concatenate(outs)
    assert got.shape == (n, 2)
    assert (got[:, 0] == want_n).all()
    assert (got[:, 1] == want_total).all()
    # idle keys were evicted: at most 200 are active within a ttl, so the
    # first table (1024 cells, 716 keys) never had to grow
    assert len(np.unique(user)) > 200_000
    assert p.stats["keys"] <= 716
    last = int(user[-1])
    assert p.state({"user": last})["n"] == want_n[-1] + 1


def test_hashed_features_are_stable():
    spec = SPEC
    events = stream(9, n=300, bad=False)
    _, _, seq, _, outs, _, _ = run(spec, events, [300])
    X = np.concatenate([o.sparse.toarray() for o in outs if len(o)])
    assert X.shape[1] == 1024 + 64
    assert (X.sum(axis=1) == 2).all()
    items = np.array([events[s]["item"] for s in seq])
    cols = X[:, 1024:].argmax(axis=1)
    for it in np.unique(items):
        assert len(set(cols[items == it])) == 1      # same item, same column


def test_pandas_and_datetime_input():
    import pandas as pd
    spec = {"events": {"time": "when", "time_unit": "ms",
                       "fields": {"who": "str", "v": "float32"}},
            "features": [{"name": "mu", "op": "mean", "key": "who",
                          "field": "v"}]}
    df = pd.DataFrame({"when": pd.to_datetime(["2026-11-01 00:00:00",
                                               "2026-11-01 00:00:01"]),
                       "who": ["x", "x"],
                       "v": np.array([2.0, 4.0], dtype=np.float32)})
    p = sw.Pipeline(spec)
    out = [p.push(df), p.flush()]
    vals = np.concatenate([o.dense for o in out])[:, 0]
    assert math.isnan(vals[0]) and vals[1] == 2.0
    t = np.concatenate([o.event_time for o in out])
    assert t[1] - t[0] == 1_000_000


def test_field_order_in_the_spec_does_not_matter():
    import copy
    events = stream(4, n=500, bad=False)
    spec2 = copy.deepcopy(SPEC)
    spec2["events"]["fields"] = dict(reversed(list(
        SPEC["events"]["fields"].items())))
    a = run(SPEC, events, [500])
    b = run(spec2, events, [500])
    assert a[1].tobytes() == b[1].tobytes()


SPEC2 = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "str", "item": "int64", "price": "float64",
                          "click": "int8"}},
    "features": [
        {"name": "sess_n", "op": "count", "key": "user",
         "window": {"session": "20m"}},
        {"name": "sess_spend", "op": "sum", "key": "user", "field": "price",
         "window": {"session": "20m"}},
        {"name": "hop_n", "op": "count", "key": "user",
         "window": {"hopping": "6h", "every": "1h"}},
        {"name": "hop_price", "op": "mean", "key": "item", "field": "price",
         "window": {"hopping": "3h", "every": "30m"}},
        {"name": "hop_clicks", "op": "sum", "key": ["user", "item"],
         "field": "click", "window": {"hopping": "12h", "every": "4h"}},
        {"name": "hop_var", "op": "var", "key": "user", "field": "price",
         "window": {"hopping": "8h", "every": "2h"}},
        {"name": "hop_min", "op": "min", "key": "item", "field": "price",
         "window": {"hopping": "2h", "every": "20m"}},
        {"name": "hop_max", "op": "max", "key": "user", "field": "price",
         "window": {"hopping": "1d", "every": "3h"}},
        {"name": "sess_ctr", "op": "rate", "key": "user", "field": "click",
         "a": 1, "b": 9, "window": {"session": "20m"}},
        {"name": "sess_last", "op": "last", "key": "user", "field": "price",
         "window": {"session": "20m"}},
        {"name": "day_gap", "op": "time_since_last", "key": "user",
         "window": {"tumbling": "1d"}},
        {"name": "z_6h", "op": "standardize", "key": "item", "field": "price",
         "window": {"tumbling": "6h"}},
        {"name": "price_hist", "op": "histogram", "key": "user",
         "field": "price", "edges": [5, 15, 40]},
        {"name": "item_mix", "op": "histogram", "key": "user",
         "field": "item", "values": [0, 1, 2, 3]},
        {"name": "item_mix_sess", "op": "histogram", "key": "user",
         "field": "item", "values": [0, 1], "window": {"session": "20m"}},
        {"name": "price_hist_6h", "op": "histogram", "key": "item",
         "field": "price", "edges": [10], "window": {"tumbling": "6h"}},
        {"name": "spend_days", "op": "daily_profile", "key": "user",
         "field": "price", "days": 3, "decay": 0.5},
        {"name": "visits_week", "op": "daily_profile", "key": "user"},
        {"name": "price_z_user", "op": "standardize", "key": "user",
         "field": "price"},
        {"name": "price_z", "op": "standardize", "field": "price"},
        {"name": "all_n_1h", "op": "count",
         "window": {"hopping": "1h", "every": "10m"}},
        {"name": "all_items", "op": "histogram", "field": "item",
         "values": [0, 1]},
        {"name": "log_price", "op": "log1p", "field": "price"},
        {"name": "price_bucket", "op": "bucketize", "field": "price",
         "edges": [10, 20, 50]},
        {"name": "item_is", "op": "one_hot", "field": "item",
         "values": [1, 5, 7]},
        {"name": "user_items", "op": "distinct", "key": "user",
         "field": "item"},
        {"name": "user_items_1h", "op": "distinct", "key": "user",
         "field": "item", "window": {"tumbling": "1h"}},
    ],
    "watermark": {"out_of_orderness": "2m", "allowed_lateness": "30m"},
}


def slow_stream(seed, n=2500):
    """The events of stream() spread over about four days, so that
    sessions end, hopping windows slide and daily profiles roll over."""
    events = stream(seed, n=n)
    for e in events:
        if isinstance(e["ts"], int) and e["ts"] > 0:
            e["ts"] *= 400
    return events


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_and_profile_operators_match_reference(seed):
    events = slow_stream(seed)
    # windows, histograms, one-hot and buckets are exact; the running
    # moments and decays go through the same formulas
    (p, got, _, t, _, _, _), _ = against_reference(
        SPEC2, events, seed, ("price_z", "spend_days", "hop_price",
                              "hop_var", "z_6h", "sess_ctr"), 1e-9)
    cols = p.columns
    assert cols[12:16] == ["price_hist<5", "price_hist[5,15)",
                           "price_hist[15,40)", "price_hist>=40"]
    # the windows did slide: sessions restarted, days rolled over
    sess = got[:, cols.index("sess_n")]
    assert (sess == 0).sum() > 40 + 10
    assert len(np.unique(t // 86_400_000_000)) >= 3


def test_distinct_count_is_close_to_exact():
    spec = {"events": {"time": "ts", "fields": {"user": "int64",
                                                "item": "int64"}},
            "features": [{"name": "d", "op": "distinct", "key": "user",
                          "field": "item"}]}
    rng = np.random.default_rng(3)
    n = 60_000
    user = rng.integers(0, 20, n)
    # users differ a lot in how many items they touch
    item = (rng.integers(0, 1 << 30, n) % (50 * (user + 1) ** 2)).astype(
        np.int64)
    p = sw.Pipeline(spec)
    out = [p.push({"ts": np.arange(n), "user": user, "item": item}),
           p.flush()]
    d = np.concatenate([o.dense[:, 0] for o in out])
    seen, small, errs = {}, [], []
    for i in range(n):
        s = seen.setdefault(int(user[i]), set())
        exact = len(s)
        if exact <= 15:
            # the first 15 items are kept exactly
            assert d[i] == exact, (i, d[i], exact)
        elif exact < 100:
            small.append(abs(d[i] - exact) / exact)
        else:
            errs.append(abs(d[i] - exact) / exact)
        s.add(int(item[i]))
    # 128 registers: standard error about 1.04 / sqrt(128) = 9 %
    for e in (np.array(small), np.array(errs)):
        assert len(e) > 1000
        assert np.median(e) < 0.09 and np.quantile(e, 0.99) < 0.35
    st = p.state({"user": 19})
    assert abs(st["d"] - len(seen[19])) / len(seen[19]) < 0.3


def test_profile_of_multi_column_features():
    spec = {"events": {"time": "ts", "time_unit": "s",
                       "fields": {"user": "str", "v": "float64"}},
            "features": [{"name": "h", "op": "histogram", "key": "user",
                          "field": "v", "edges": [0, 10]},
                         {"name": "z", "op": "standardize", "field": "v"},
                         {"name": "lg", "op": "log1p", "field": "v"}]}
    p = sw.Pipeline(spec)
    p.push({"ts": [1, 2, 3, 4], "user": ["a", "a", "a", "b"],
            "v": [-1.0, 5.0, 50.0, 3.0]})
    p.flush()
    assert p.state({"user": "a"}) == {"h<0": 1 / 3, "h[0,10)": 1 / 3,
                                      "h>=10": 1 / 3}
    assert p.state({"user": "b"}) == {"h<0": 0.0, "h[0,10)": 1.0,
                                      "h>=10": 0.0}


def test_operator_settings_are_checked():
    import copy
    bad = [
        ({"name": "x", "op": "histogram", "key": "user", "field": "price"},
         r"features\[0\].*edges or values"),
        ({"name": "x", "op": "count", "key": "user",
          "window": {"hopping": "1h", "every": "7m"}},
         r"features\[0\]\.window"),
        ({"name": "x", "op": "last", "key": "user", "field": "price",
          "window": {"hopping": "1h", "every": "10m"}},
         r"features\[0\]\.window: hopping windows take"),
        ({"name": "x", "op": "decayed_count", "key": "user",
          "half_life": "1h", "window": {"tumbling": "1h"}},
         r"features\[0\]\.window: not a setting"),
        ({"name": "x", "op": "daily_profile", "key": "user", "days": 0},
         r"features\[0\]: daily_profile needs days"),
        ({"name": "x", "op": "one_hot", "field": "item"},
         r"features\[0\]: one_hot needs values"),
        ({"name": "x", "op": "bucketize", "field": "price",
          "edges": [3, 2]}, r"features\[0\].*edges"),
        ({"name": "x", "op": "one_hot", "field": "item",
          "values": ["a"]}, r"not a value of field 'item'"),
    ]
    for feat, msg in bad:
        spec = copy.deepcopy(SPEC2)
        spec["features"] = [feat]
        with pytest.raises(sw.InvalidArgument, match=msg):
            sw.Pipeline(spec)


def test_new_operators_survive_kill_and_restore(tmp_path):
    events = slow_stream(7, n=1500)
    rng = np.random.default_rng(7)
    sizes = batch_sizes(rng, len(events))
    whole = run(SPEC2, events, sizes)
    p = sw.Pipeline(SPEC2)
    dense, i = [], 0
    for k, size in enumerate(sizes):
        if i >= len(events):
            break
        dense.append(p.push(as_batch(events[i:i + size])).dense)
        i += size
        if k % 3 == 1:
            p.checkpoint(tmp_path / "ck.swc", str(i))
            p, _ = sw.Pipeline.restore(tmp_path / "ck.swc")
    dense.append(p.flush().dense)
    assert np.concatenate(dense).tobytes() == whole[1].tobytes()


def private(spec, fields=("user",)):
    import copy
    s = copy.deepcopy(spec)
    s["privacy"] = {"fields": list(fields)}
    return s


SECRET = b"correct horse battery staple"


def test_private_ids_never_reach_state_rows_or_checkpoints(tmp_path):
    spec = private(SPEC)
    events = stream(11, n=1500)
    plain = run(SPEC, events, [1500])
    p = sw.Pipeline(spec, secret=SECRET)
    outs = [p.push(as_batch(events)), p.flush()]
    dense = np.concatenate([o.dense for o in outs])
    # keying by the keyed hash changes no feature value
    assert dense.tobytes() == plain[1].tobytes()
    users = np.concatenate([o.events["user"] for o in outs if len(o)])
    assert users.dtype == np.uint64
    ids = {e["user"] for e in events}
    assert not ids & {str(u) for u in users}
    # one id, one hash: the same user gets the same pseudonym throughout
    seq = np.concatenate([o.index for o in outs])
    by_id = {}
    for s, u in zip(seq, users):
        by_id.setdefault(events[s]["user"], set()).add(int(u))
    assert all(len(v) == 1 for v in by_id.values())
    assert len({next(iter(v)) for v in by_id.values()}) == len(by_id)
    # profiles are looked up by the id and answer from the hashed state
    assert p.state({"user": "u3"}) == plain[0].state({"user": "u3"})
    path = tmp_path / "ck.swc"
    p.checkpoint(path, b"7")
    blob = path.read_bytes()
    assert SECRET not in blob
    for u in ids:
        assert f'"{u}"'.encode() not in blob and u.encode() + b"\0" \
            not in blob
    # the same id under another secret is another pseudonym
    q = sw.Pipeline(spec, secret=b"another secret of 16+ bytes")
    o = [q.push(as_batch(events[:50])), q.flush()]
    other = np.concatenate([x.events["user"] for x in o if len(x)])
    assert not set(other.tolist()) & set(users.tolist())


def test_private_restore_needs_the_same_secret(tmp_path):
    spec = private(SPEC, ("user", "item"))
    events = stream(12, n=1200)
    whole = sw.Pipeline(spec, secret=SECRET)
    want = np.concatenate([whole.push(as_batch(events)).dense,
                           whole.flush().dense])
    p = sw.Pipeline(spec, secret=SECRET)
    got = [p.push(as_batch(events[:600])).dense]
    p.checkpoint(tmp_path / "ck.swc", b"600")
    with pytest.raises(sw.InvalidArgument, match="not the secret"):
        sw.Pipeline.restore(tmp_path / "ck.swc", secret=b"x" * 16)
    with pytest.raises(sw.InvalidArgument, match="pass secret="):
        sw.Pipeline.restore(tmp_path / "ck.swc")
    q, pos = sw.Pipeline.restore(tmp_path / "ck.swc", secret=SECRET)
    assert pos == b"600"
    got += [q.push(as_batch(events[600:])).dense, q.flush().dense]
    assert np.concatenate(got).tobytes() == want.tobytes()
    # an int64 id never sits in the buffered events either
    blob = (tmp_path / "ck.swc").read_bytes()
    big = sw.Pipeline(spec, secret=SECRET)
    ident = 0x5EC12E71D0BADF0
    big.push({"ts": [10**9], "user": ["u"], "item": [ident],
              "price": [1.0], "click": np.array([0], np.int8)})
    big.checkpoint(tmp_path / "big.swc", b"")
    blob = (tmp_path / "big.swc").read_bytes()
    assert big.stats["buffered"] == 1
    assert ident.to_bytes(8, "little") not in blob
    assert np.float64(ident).tobytes() not in blob


def test_privacy_settings_are_checked(monkeypatch):
    monkeypatch.delenv("STREAMWISE_PRIVACY_SECRET", raising=False)
    with pytest.raises(sw.InvalidArgument, match="pass secret="):
        sw.Pipeline(private(SPEC))
    with pytest.raises(sw.InvalidArgument, match="at least 16"):
        sw.Pipeline(private(SPEC), secret=b"short")
    monkeypatch.setenv("STREAMWISE_PRIVACY_SECRET", "from the environment!")
    assert sw.Pipeline(private(SPEC)).columns == sw.Pipeline(SPEC).columns
    for fields, msg in [(["ts"], r"privacy.fields\[0\]: the time"),
                        (["colour"], r"'colour' is not an event field"),
                        (["price"], r"'price' is private")]:
        with pytest.raises(sw.InvalidArgument, match=msg):
            sw.Pipeline(private(SPEC, fields), secret=SECRET)


def partitioned(seed, n_parts=3, n=2400, lag_s=600):
    """Events of n_parts partitions, each in its own order, interleaved in
    arrival by random runs; partition k runs k * lag_s seconds behind.
    Returns (events, partition of each, runs as (start, stop, partition))."""
    rng = np.random.default_rng(seed)
    per = [stream(seed * 10 + k, n=n // n_parts) for k in range(n_parts)]
    for k, evs in enumerate(per):
        for e in evs:
            if isinstance(e["ts"], int) and e["ts"] > 0:
                e["ts"] = max(0, e["ts"] + 3_600_000_000 - k * lag_s * 10**6)
    pos = [0] * n_parts
    events, parts, runs = [], [], []
    while any(pos[k] < len(per[k]) for k in range(n_parts)):
        k = int(rng.integers(n_parts))
        m = min(int(rng.integers(1, 120)), len(per[k]) - pos[k])
        if m <= 0:
            continue
        runs.append((len(events), len(events) + m, k))
        events += per[k][pos[k]:pos[k] + m]
        parts += [k] * m
        pos[k] += m
    return events, parts, runs


def run_partitioned(spec, events, runs):
    p = sw.Pipeline(spec)
    outs, late = [], []
    for a, b, k in runs:
        o = p.push(as_batch(events[a:b]), partition=k)
        late += (o.late + a).tolist()
        outs.append(o)
    outs.append(p.flush())
    return (p, np.concatenate([o.dense for o in outs]),
            np.concatenate([o.index for o in outs]), sorted(late))


@pytest.mark.parametrize("seed", [0, 1])
def test_partition_watermarks_follow_the_slowest(seed):
    events, parts, runs = partitioned(seed)
    rows, late, _ = pipeline_reference(SPEC, events, parts)
    p, dense, seq, got_late = run_partitioned(SPEC, events, runs)
    assert seq.tolist() == [r[0] for r in rows]
    assert got_late == late
    cols = p.columns
    want = np.array([[r[2][c] for c in cols] for r in rows])
    np.testing.assert_allclose(dense, want, rtol=1e-12, equal_nan=True)
    # the lagging partitions' events are on time per partition; one
    # watermark for the whole source would have thrown most of them away
    _, one_late, _ = pipeline_reference(SPEC, events)
    assert len(one_late) > 4 * len(late)
    lagging = [s for s in late if parts[s] == 2]
    assert len(lagging) < 0.1 * parts.count(2)


def test_idle_partitions_stop_holding_the_watermark(tmp_path):
    import copy
    spec = copy.deepcopy(SPEC)
    events, parts, runs = partitioned(3, lag_s=0)
    # partition 1 goes quiet a third of the way in
    cut = runs[len(runs) // 3][0]
    keep = [i for i in range(len(events)) if parts[i] != 1 or i < cut]
    events = [events[i] for i in keep]
    parts = [parts[i] for i in keep]
    runs, i = [], 0
    while i < len(events):
        j = i
        while j < len(events) and parts[j] == parts[i] and j - i < 100:
            j += 1
        runs.append((i, j, parts[i]))
        i = j
    stalled = sw.Pipeline(spec)
    for a, b, k in runs[:-1]:
        stalled.push(as_batch(events[a:b]), partition=k)
    spec["watermark"]["idle_timeout"] = "2m"
    rows, late, _ = pipeline_reference(spec, events, parts)
    p = sw.Pipeline(spec)
    for a, b, k in runs[:-1]:
        p.push(as_batch(events[a:b]), partition=k)
    # without idleness the quiet partition holds back every other one
    assert stalled.stats["buffered"] > 5 * p.stats["buffered"]
    path = tmp_path / "ck.swc"
    p.checkpoint(path)
    q, _ = sw.Pipeline.restore(path)
    a, b, k = runs[-1]
    o1 = p.push(as_batch(events[a:b]), partition=k)
    o2 = q.push(as_batch(events[a:b]), partition=k)
    assert o1.dense.tobytes() == o2.dense.tobytes()
    assert o1.late.tolist() == o2.late.tolist()
    p2, dense, seq, got_late = run_partitioned(spec, events, runs)
    assert seq.tolist() == [r[0] for r in rows] and got_late == late
    with pytest.raises(sw.InvalidArgument, match="partition 1024"):
        p2.push(as_batch(events[:1]), partition=1024)


def test_declared_partitions_wait_for_a_late_starter():
    import copy
    events, parts, runs = partitioned(4)
    # partition 2 (the slowest) only starts after everything else
    order = sorted(range(len(runs)), key=lambda r: runs[r][2] == 2)
    ev2, parts2, runs2 = [], [], []
    for r in order:
        a, b, k = runs[r]
        runs2.append((len(ev2), len(ev2) + b - a, k))
        ev2 += events[a:b]
        parts2 += [k] * (b - a)
    spec = copy.deepcopy(SPEC)
    spec["watermark"]["partitions"] = 3
    for sp in (SPEC, spec):
        rows, late, _ = pipeline_reference(sp, ev2, parts2)
        p, dense, seq, got_late = run_partitioned(sp, ev2, runs2)
        assert seq.tolist() == [r[0] for r in rows] and got_late == late
        late2 = sum(parts2[s] == 2 for s in late)
        if sp is SPEC:     # unannounced: partition 2 arrives behind
            assert late2 > 0.9 * parts2.count(2)
        else:
            assert late2 < 0.1 * parts2.count(2)
    with pytest.raises(sw.InvalidArgument, match=r"0\.\.2 \(watermark"):
        sw.Pipeline(spec).push(as_batch(ev2[:1]), partition=3)


JOIN_SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "str", "imp": "int64", "kind": "str",
                          "value": "float64"}},
    "features": [
        {"name": "user_n", "op": "count", "key": "user"},
        {"name": "user_kinds", "op": "histogram", "key": "user",
         "field": "kind", "values": ["imp", "click"]},
        {"name": "user_value", "op": "decayed_sum", "key": "user",
         "field": "value", "half_life": "10m"},
        {"name": "user_x_imp", "op": "hash", "fields": ["user", "imp"],
         "dims": 4096},
    ],
    "watermark": {"out_of_orderness": "5s", "allowed_lateness": "10s"},
    "label_join": {"key": "imp", "type": "kind", "prediction": "imp",
                   "outcome": "click", "within": "2m", "label": "value"},
}


def join_stream(seed, n_imp=1500):
    """Impressions, and for some of them a click 0-4 minutes later (so
    some arrive too late to count); a few impression ids repeat; arrival
    order is event time with jitter, and a few events are very late."""
    rng = np.random.default_rng(seed)
    events = []
    t = 0
    for i in range(n_imp):
        t += int(rng.exponential(300_000))
        imp = i if rng.random() > 0.03 else max(0, i - int(rng.integers(5)))
        user = f"u{rng.integers(30)}"
        events.append({"ts": t, "user": user, "imp": imp, "kind": "imp",
                       "value": 0.0})
        if rng.random() < 0.3:
            events.append({"ts": t + int(rng.exponential(60_000_000)),
                           "user": user, "imp": imp, "kind": "click",
                           "value": float(rng.integers(1, 4))})
    arrival = np.array([e["ts"] for e in events]) + \
        rng.integers(-4_000_000, 4_000_000, len(events))
    arrival[rng.random(len(events)) < 0.01] += 60_000_000
    return [events[i] for i in np.argsort(arrival, kind="stable")]


def join_batch(events):
    return {"ts": np.array([e["ts"] for e in events], np.int64),
            "user": np.array([e["user"] for e in events], dtype=object),
            "imp": np.array([e["imp"] for e in events], np.int64),
            "kind": np.array([e["kind"] for e in events], dtype=object),
            "value": np.array([e["value"] for e in events])}


def run_join(spec, events, sizes, restore_at=(), tmp_path=None):
    p = sw.Pipeline(spec)
    got, i = [], 0
    for k, size in enumerate(sizes):
        if i >= len(events):
            break
        got.append(p.push(join_batch(events[i:i + size])).pairs)
        i += size
        if k in restore_at:
            p.checkpoint(tmp_path / "j.swc", str(i))
            p, _ = sw.Pipeline.restore(tmp_path / "j.swc")
    got.append(p.flush().pairs)
    cat = {k: np.concatenate([getattr(g, k) for g in got])
           for k in ("dense", "index", "event_time", "label",
                     "outcome_index")}
    cat["sparse"] = np.concatenate([g.sparse.toarray() for g in got])
    return p, cat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_join_matches_reference(seed, tmp_path):
    events = join_stream(seed)
    want = []
    rows, late, _ = pipeline_reference(JOIN_SPEC, events, pairs=want)
    rng = np.random.default_rng(seed)
    sizes = batch_sizes(rng, len(events))
    p, got = run_join(JOIN_SPEC, events, sizes)
    assert got["index"].tolist() == [w[0] for w in want]
    assert got["event_time"].tolist() == [w[1] for w in want]
    assert got["label"].tolist() == [w[3] for w in want]
    assert got["outcome_index"].tolist() == [w[4] for w in want]
    cols = p.columns
    np.testing.assert_allclose(
        got["dense"], np.array([[w[2][c] for c in cols] for w in want]),
        rtol=1e-12, equal_nan=True)
    # a pair carries the row its prediction had when it happened: the
    # click (and anything after the impression) is not in it
    q = sw.Pipeline(JOIN_SPEC)
    outs = [q.push(join_batch(events)), q.flush()]
    row_of = dict(zip(np.concatenate([o.index for o in outs]).tolist(),
                      np.concatenate([o.dense for o in outs])))
    for s_, d in zip(got["index"], got["dense"]):
        assert d.tobytes() == row_of[int(s_)].tobytes()
    matched = got["outcome_index"] >= 0
    assert 0.15 < matched.mean() < 0.35
    imps = sum(e["kind"] == "imp" for i, e in enumerate(events)
               if i not in set(late))
    st = p.stats
    assert st["joined"] == matched.sum()
    assert st["joined"] + st["unmatched"] == imps == len(want)
    # each pair's sparse row is the hash of its own user and impression
    assert (got["sparse"].sum(axis=1) == 1).all()
    # batching, and restoring with predictions waiting, change nothing
    _, one = run_join(JOIN_SPEC, events, [len(events)])
    cuts = set(rng.choice(len(sizes), size=3, replace=False).tolist())
    _, resumed = run_join(JOIN_SPEC, events, sizes, cuts, tmp_path)
    for other in (one, resumed):
        for k in got:
            assert other[k].tobytes() == got[k].tobytes(), k


def test_label_join_drop_and_settings():
    import copy
    events = join_stream(5, n_imp=400)
    spec = copy.deepcopy(JOIN_SPEC)
    spec["label_join"]["unmatched"] = "drop"
    del spec["label_join"]["label"]
    want = []
    pipeline_reference(spec, events, pairs=want)
    p, got = run_join(spec, events, [97] * 20)
    assert (got["label"] == 1.0).all() and (got["outcome_index"] >= 0).all()
    assert got["index"].tolist() == [w[0] for w in want]
    assert p.stats["unmatched"] > 0
    bad = [({"within": "soon"}, r"label_join\.within"),
           ({"key": "nobody"}, r"label_join\.key: 'nobody' is not an event"),
           ({"outcome": "imp"}, r"two different values of field 'kind'"),
           ({"label": "user"}, r"'user' is a string"),
           ({"unmatched": "keep"}, r"\"negative\" or \"drop\""),
           ({"colour": 1}, r"label_join\.colour: not a setting")]
    for change, msg in bad:
        s = copy.deepcopy(JOIN_SPEC)
        s["label_join"].update(change)
        with pytest.raises(sw.InvalidArgument, match=msg):
            sw.Pipeline(s)


def test_background_checkpoint_is_the_snapshot_of_its_moment(tmp_path):
    events = stream(21, n=3000)
    p = sw.Pipeline(SPEC)
    p.push(as_batch(events[:1500]))
    p.checkpoint(tmp_path / "sync.swc", b"1500")
    p.checkpoint(tmp_path / "bg.swc", b"1500", background=True)
    with pytest.raises(sw.InvalidArgument, match="still being written"):
        p.checkpoint(tmp_path / "bg2.swc", background=True)
    # the parent goes on while the child writes the state of the fork
    p.push(as_batch(events[1500:]))
    assert p.checkpoint_wait() is True
    assert p.checkpoint_wait() is True          # nothing running
    assert (tmp_path / "bg.swc").read_bytes() == \
        (tmp_path / "sync.swc").read_bytes()
    # a failure in the child comes back as an error
    p.checkpoint(tmp_path / "no" / "such" / "dir.swc", background=True)
    with pytest.raises(sw.IOError, match="checkpoint \\(background\\)"):
        p.checkpoint_wait()
    q, pos = sw.Pipeline.restore(tmp_path / "bg.swc")
    assert pos == b"1500"


# ---- arrival emission, the value operator, defaults for no history -------

SPEC_ARRIVAL = dict(SPEC, emission="arrival", features=SPEC["features"] + [
    {"name": "price_now", "op": "value", "field": "price"},
    {"name": "click_now", "op": "value", "field": "click"},
    {"name": "user_price_mu0", "op": "mean", "key": "user", "field": "price",
     "default": 0},
    {"name": "user_price_z0", "op": "standardize", "key": "user",
     "field": "price", "default": -1.5},
    {"name": "item_mix0", "op": "histogram", "key": "item", "field": "price",
     "edges": [10, 30], "default": 0.25},
])


@pytest.mark.parametrize("seed", [0, 3])
def test_arrival_emission_matches_reference(seed):
    events = stream(seed)
    (p, dense, seq, t, outs, _, _), (rows, late, _) = against_reference(
        SPEC_ARRIVAL, events, seed,
        ("user_clicks_h", "user_events_10m", "user_price_z0"), 1e-12)
    # every event that is neither late nor invalid comes out of its own
    # push, in arrival order, though times go back within the jitter
    assert (np.diff(seq) > 0).all() and (np.diff(t) < 0).any()
    assert all(len(o) == 0 for o in outs[-1:])     # flush has nothing left
    cols = p.columns
    price = np.array([events[s]["price"] for s in seq])
    assert dense[:, cols.index("price_now")].tolist() == price.tolist()
    # a value where the plain operator gives NaN, never NaN itself
    for c, plain, fill in (("user_price_mu0", "user_price_mu", 0.0),):
        nan = np.isnan(dense[:, cols.index(plain)])
        assert nan.any() and (dense[nan, cols.index(c)] == fill).all()
        assert (dense[~nan, cols.index(c)] ==
                dense[~nan, cols.index(plain)]).all()
    for c in ("user_price_z0", "item_mix0<10"):
        assert not np.isnan(dense[:, cols.index(c)]).any()


def test_arrival_emission_survives_kill_and_restore(tmp_path):
    events = [e for e in stream(4, bad=False)]
    _, want, want_seq, *_ = run(SPEC_ARRIVAL, events, [len(events)])
    p = sw.Pipeline(SPEC_ARRIVAL)
    got = [p.push(as_batch(events[:1234])).dense]
    p.checkpoint(tmp_path / "c")
    p, _ = sw.Pipeline.restore(tmp_path / "c")
    got.append(p.push(as_batch(events[1234:])).dense)
    assert np.concatenate(got).tobytes() == want.tobytes()


@pytest.mark.parametrize("change, message", [
    ({"emission": "soon"}, "emission: expected"),
    ({"features": [{"name": "x", "op": "value", "field": "user"}]},
     "is a string"),
    ({"features": [{"name": "x", "op": "mean", "key": "user",
                    "field": "price", "default": "zero"}]},
     "default: expected a finite number"),
    ({"features": [{"name": "x", "op": "hash", "fields": ["user"],
                    "dims": 8, "default": 0}]}, "not a setting of hash"),
    ({"features": [{"name": "x", "op": "avg", "field": "price"}]},
     "known: count, sum, mean"),
])
def test_emission_value_and_default_are_checked(change, message):
    with pytest.raises(sw.InvalidArgument, match=message):
        sw.Pipeline(dict(SPEC, **change))


def test_a_key_budget_drops_the_keys_seen_least_recently(tmp_path):
    """Without a TTL state grew without bound (issue 15): max_keys keeps a
    table at most that large, dropping the keys seen longest ago (by event
    time, so that any batching, a restore or a replay drops the same)."""
    spec = {"events": {"time": "ts", "fields": {"user": "int64"}},
            "features": [{"name": "n", "op": "count", "key": "user"}],
            "max_keys": 100}
    rng = np.random.default_rng(3)
    n = 3000
    users = np.where(rng.random(n) < 0.5, rng.integers(0, 5, n),
                     rng.integers(5, 2000, n))
    ev = {"ts": np.arange(n, dtype=np.int64) * 10, "user": users}
    whole = sw.Pipeline(spec)
    want = whole.push(ev).dense[:, 0]
    assert whole.stats["keys"] <= 100 and whole.stats["evicted"] > 1000
    # the 5 busy users (one event in 10 each) are never the least recent:
    # their counts are exact
    busy = users < 5
    exact = np.array([np.sum(users[:i] == users[i]) for i in range(n)])
    assert (want[busy] == exact[busy]).all()
    assert (want[~busy] < exact[~busy]).any()      # rare ones start over
    # the same rows in pieces, and across a checkpoint
    p = sw.Pipeline(spec)
    got = [p.push({k: v[:1234] for k, v in ev.items()}).dense[:, 0]]
    p.checkpoint(tmp_path / "c")
    p, _ = sw.Pipeline.restore(tmp_path / "c")
    for a in range(1234, n, 500):
        got.append(p.push({k: v[a:a + 500] for k, v in ev.items()})
                   .dense[:, 0])
        assert p.stats["keys"] <= 100
    assert np.concatenate(got).tobytes() == want.tobytes()
    with pytest.raises(sw.InvalidArgument, match="max_keys: expected"):
        sw.Pipeline(dict(spec, max_keys=0))


def test_state_bytes_grow_with_keys_and_stop_at_the_budget():
    """The state's size is reported (p.stats, the runner's sw_state_bytes):
    it grows with new keys without a budget and stays put with one."""
    spec = {"events": {"time": "ts", "fields": {"user": "int64",
                                                "x": "float64"}},
            "features": [{"name": "n", "op": "count", "key": "user"},
                         {"name": "m", "op": "mean", "key": "user",
                          "field": "x", "window": {"tumbling": "1h"}}]}
    free, capped = sw.Pipeline(spec), sw.Pipeline(dict(spec, max_keys=1000))
    sizes = {"free": [], "capped": []}
    for k in range(5):
        users = np.arange(k * 20000, (k + 1) * 20000)
        ev = {"ts": users * 1000, "user": users, "x": np.ones(len(users))}
        for name, p in (("free", free), ("capped", capped)):
            p.push(ev)
            sizes[name].append(p.stats["state_bytes"])
    assert free.stats["keys"] == 100000 and capped.stats["keys"] <= 1000
    # about 32 bytes or more a key, and monotone without a budget
    assert sizes["free"][-1] >= 100000 * 32
    assert sizes["free"] == sorted(sizes["free"])
    assert sizes["free"][-1] > 3 * sizes["free"][0]   # capacity doubles
    # with one: no growth after the first batch filled it
    assert len(set(sizes["capped"][1:])) == 1
    # the keys' share: 80,000 keys more cost at least 32 bytes each
    assert sizes["free"][-1] - sizes["free"][0] >= 80000 * 32


def test_repr_says_what_the_pipeline_holds():
    spec = {"events": {"time": "ts", "time_unit": "s",
                       "fields": {"u": "str"}},
            "features": [{"name": "n", "op": "count", "key": "u"}]}
    p = sw.Pipeline(spec, emission="arrival")
    p.push({"ts": [1, 2, 3], "u": ["a", "b", "a"]})
    assert repr(p) == ("Pipeline(1 columns, arrival emission, 2 keys, "
                       "3 events out, 0 buffered)")


def test_push_rows_are_not_copied_and_their_memory_is_reused():
    """A push's feature rows are the result's own arrays (no copy): held
    results keep their values through later pushes, and the memory of a
    dropped result is what the next push writes into."""
    events = stream(3, n=2000, bad=False)
    p = sw.Pipeline(SPEC)
    first = p.push(as_batch(events[:800]))
    want = first.dense.copy(), first.index.copy(), first.event_time.copy()
    addr = first.dense.__array_interface__["data"][0]
    second = p.push(as_batch(events[800:1600]))
    assert second.dense.__array_interface__["data"][0] != addr
    assert np.array_equal(first.dense, want[0], equal_nan=True)
    assert (first.index == want[1]).all()
    assert (first.event_time == want[2]).all()
    addr2 = second.dense.__array_interface__["data"][0]
    del first, second
    third = p.push(as_batch(events[1600:]))
    assert third.dense.__array_interface__["data"][0] in (addr, addr2)
    # the same rows as a pipeline whose results were all kept
    q = sw.Pipeline(SPEC)
    ref = [q.push(as_batch(events[i:i + 800])) for i in (0, 800, 1600)]
    assert third.dense.tobytes() == ref[2].dense.tobytes()
    assert (third.index == ref[2].index).all()
    # a result outliving its pipeline keeps its rows
    keep = third.dense.copy()
    del p
    assert np.array_equal(third.dense, keep, equal_nan=True)
