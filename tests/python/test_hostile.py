"""Inputs an independent fuzzing probe found mishandled (issue 15): each
test fails without its fix."""
import numpy as np
import pytest

import streamwise as sw


def test_overlapping_row_views_are_copied_not_read_past_their_end():
    """A sliding window view has a row stride below the row length: the
    core must see it as the rows it shows."""
    base = np.linspace(-1, 1, 100)
    view = np.lib.stride_tricks.sliding_window_view(base, 5)
    copy = np.ascontiguousarray(view)
    y = (copy.sum(axis=1) > 0).astype(int)
    for cls in (sw.PassiveAggressiveClassifier, sw.SCWClassifier):
        a = cls().fit(view, y)
        b = cls().fit(copy, y)
        assert a._fitted().weights.tobytes() == b._fitted().weights.tobytes()
        assert a.decision_function(view).tobytes() == \
            b.decision_function(copy).tobytes()
        a.partial_fit(view[::-1], y[::-1])
        b.partial_fit(copy[::-1], y[::-1])
        assert a.predict(view).tolist() == b.predict(copy).tolist()
    r = sw.PassiveAggressiveRegressor().fit(view, copy.sum(axis=1))
    assert r.predict(view).tobytes() == r.predict(copy).tobytes()


SPEC = {"events": {"time": "ts", "fields": {"user": "str", "item": "int64"}},
        "features": [{"name": "n", "op": "count", "key": "user"},
                     {"name": "items", "op": "distinct", "key": "user",
                      "field": "item"}]}


def test_durations_that_would_overflow_are_refused():
    for d in (9 * 10**18, "1e9d", "9e18us", "1e300h"):
        with pytest.raises(sw.InvalidArgument, match="out_of_orderness"):
            sw.Pipeline(dict(SPEC, watermark={"out_of_orderness": d}))
    sw.Pipeline(dict(SPEC, watermark={"out_of_orderness": "3650d"}))


def test_text_with_a_nul_and_fractional_integers_are_refused():
    """'a\\0x' and 'a\\0y' were one key (the core's text is NUL-padded);
    3.5 in an int64 field hashed as a float."""
    p = sw.Pipeline(SPEC)
    for users in (np.array(["a\0x", "a\0y", "a"]),
                  np.array(["a\0x", "a\0y", "a"], dtype=object),
                  np.array([b"a\0x", b"a\0y", b"a"])):
        out = p.push({"ts": [1, 2, 3], "user": users, "item": [1, 2, 3]})
        assert out.invalid["rows"].tolist() == [0, 1]
        assert out.invalid["reason"].tolist() == ["wrong_type"] * 2
    out = p.push({"ts": [4, 5], "user": ["b", "b"],
                  "item": np.array([3.0, 3.5])})
    assert out.invalid["rows"].tolist() == [1]
    assert out.dense[:, 1].tolist() == [0.0]      # 3.0 is the integer 3


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    """A writer killed between its write and its rename left path.tmp.<pid>
    for ever; the next write of the same file removes those of dead
    processes and leaves a live writer's alone."""
    import os
    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()
    X = np.random.default_rng(0).standard_normal((50, 3))
    m = sw.PassiveAggressiveClassifier().fit(X, X[:, 0] > 0)
    path = tmp_path / "m.swm"
    stale = tmp_path / f"m.swm.tmp.{dead.pid}"
    live = tmp_path / f"m.swm.tmp.{os.getppid()}"
    stale.write_bytes(b"half a model")
    live.write_bytes(b"being written")
    m.save(path)
    assert not stale.exists() and live.exists()
    sw.load(path)
    # a pipeline checkpoint and a registration the same way
    p = sw.Pipeline(SPEC)
    stale = tmp_path / f"c.swc.tmp.{dead.pid}"
    stale.write_bytes(b"torn")
    p.checkpoint(tmp_path / "c.swc")
    assert not stale.exists()
    from streamwise import registry
    store = tmp_path / "store"
    registry.register(path, "m", store=store)
    folder = store / "models" / "m"
    stale = folder / f"2.swm.tmp.{dead.pid}"
    stale.write_bytes(b"torn")
    m.partial_fit(X[:5], X[:5, 0] > 0)
    m.save(path)
    registry.register(path, "m", store=store)
    assert not stale.exists()


def test_a_nan_label_is_named_not_a_bare_key_error():
    X = np.random.default_rng(0).standard_normal((5, 3))
    for cls in (sw.PassiveAggressiveClassifier, sw.SCWClassifier):
        with pytest.raises(sw.InvalidArgument, match=r"y\[2\] is nan"):
            cls().fit(X, np.array([0, 1, np.nan, 1, 0]))
        with pytest.raises(sw.InvalidArgument, match=r"y\[1\] is None"):
            cls().partial_fit(X[:3], np.array([0, None, 1], dtype=object))


def test_an_als_model_of_no_users_loads_as_it_saved(tmp_path):
    import scipy.sparse as sp
    m = sw.ALS(factors=2, iterations=1).fit(sp.csr_matrix((0, 5)))
    m.save(tmp_path / "als0.swm")
    back = sw.learners.load(tmp_path / "als0.swm")
    # users, items, factors (no users: no liked items to keep)
    assert back._fitted().als_info[:3] == m._fitted().als_info[:3] == \
        (0, 5, 2)
