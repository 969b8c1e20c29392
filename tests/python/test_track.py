"""Experiment tracking: runs, params, metrics over event time, search, and
the store's behaviour under concurrency, Ctrl-C and corruption."""
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import streamwise as sw
from streamwise import track
from streamwise import registry
from streamwise.store import StoreError, get_store

from conftest import STORE_KINDS, make_store, raw_errors, raw_sql, ROOT


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    """Every test here runs on both stores."""
    return make_store(request.param, tmp_path, request)


def child_env(store):
    return dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
                STREAMWISE_TRACKING_URI=store)


def test_run_records_everything(store):
    t0 = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.timezone.utc)
    with track.run(experiment="ctr", name="pa-1", params={"C": 0.5,
                   "model": "pa", "seed": 7}, tags={"team": "ads"},
                   store=store) as r:
        for i in range(1000):
            r.log_metric("acc", i / 1000, step=(i + 1) * 64,
                         event_time=t0 + dt.timedelta(seconds=i))
        r.log_metrics({"loss": 0.3, "auc": 0.8}, step=64000)
        r.log_param("C", 0.5)                     # same value: fine
        with pytest.raises(sw.InvalidArgument, match="write-once"):
            r.log_param("C", 1.0)
        r.set_tag("team", "growth")               # tags may change
        r.log_input({"kind": "hdf5", "path": "events.h5", "sha256": "ab",
                     "rows": [0, 64000]})
    info = track.get_run(r.id, store=store)
    assert info["status"] == "FINISHED" and info["name"] == "pa-1"
    assert info["params"] == {"C": "0.5", "model": "pa", "seed": "7"}
    assert info["tags"] == {"team": "growth"}
    assert info["seed"] == 7
    assert info["streamwise_version"] == sw.__version__
    assert info["core_build"] == sw._sw.build_id()
    assert len(info["git_commit"]) == 40          # the tests run in the repo
    m = info["metrics"]["acc"]
    assert (m["n"], m["min"], m["max"], m["last"], m["last_step"]) == \
        (1000, 0.0, 0.999, 0.999, 64000)
    assert info["inputs"][0]["slice"]["rows"] == [0, 64000]
    h = r.metric_history("acc")
    assert len(h) == 1000 and h["step"].iloc[-1] == 64000
    assert np.allclose(h["value"], np.arange(1000) / 1000)
    assert h["event_time"].iloc[1] - h["event_time"].iloc[0] == \
        np.timedelta64(1, "s")
    assert str(h["event_time"].iloc[0]) == "2026-11-03 12:00:00"
    assert track.open_run(r.id[:10], store=store).metric_history(
        "loss")["value"].tolist() == [0.3]


def test_failed_status_and_nesting(store):
    with pytest.raises(ZeroDivisionError):
        with track.run(experiment="e", store=store) as outer:
            with track.run(experiment="e", store=store) as inner:
                assert track.active_run() is inner
            1 / 0
    assert outer.status == "FAILED" and inner.status == "FINISHED"
    assert track.get_run(inner.id, store=store)["parent_id"] == outer.id


def test_ctrl_c_marks_killed_and_keeps_data(store):
    # Ctrl-C as a terminal gives it: a shell that starts the tests in the
    # background leaves SIGINT ignored, and the child would inherit that
    code = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from streamwise import track
        with track.run(experiment="long", params={"p": 1}) as r:
            for i in range(500):
                r.log_metric("x", i)
            track.flush()
            print(r.id, flush=True)
            while True:
                r.log_metric("x", 1.0)
                time.sleep(0.001)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], env=child_env(store),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        run_id = p.stdout.readline().strip()
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        # a child that outlives a failed test would log forever
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0 and "KeyboardInterrupt" in err
    info = track.get_run(run_id, store=store)
    assert info["status"] == "KILLED"
    assert info["metrics"]["x"]["n"] >= 500
    assert len(track.open_run(run_id, store=store).metric_history("x")) == \
        info["metrics"]["x"]["n"]


def test_a_writer_killed_between_points_and_summary_loses_nothing(store):
    """The series file and its summary used to be two steps: a SIGKILL
    between them left the summary up to 1,212 points short, for good.
    Killed at the summary here: whatever the file holds, the summary
    counts, from the next read on."""
    code = textwrap.dedent("""
        import os, signal
        from streamwise import track
        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        track.fold_summary = die
        with track.run(experiment="cut") as r:
            print(r.id, flush=True)
            for i in range(100):
                r.log_metric("x", float(i) - 40)
            track.flush()
    """)
    p = subprocess.run([sys.executable, "-c", code], env=child_env(store),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    run_id = p.stdout.strip()
    info = track.get_run(run_id, store=store)
    hist = track.open_run(run_id, store=store).metric_history("x")
    if get_store(store).points_in_db:
        # one transaction: neither the points nor the summary
        assert "x" not in info["metrics"] and len(hist) == 0
    else:
        m = info["metrics"]["x"]
        assert (m["n"], m["min"], m["max"], m["last"]) == (100, -40, 59, 59)
        assert len(hist) == 100


def test_random_kills_leave_summaries_equal_to_their_series(store, rng):
    code = textwrap.dedent("""
        import numpy as np
        from streamwise import track
        rng = np.random.default_rng()
        with track.run(experiment="kills") as r:
            r.log_metric("x", 0.0)
            track.flush()
            print(r.id, flush=True)
            while True:
                for v in rng.standard_normal(int(rng.integers(1, 3000))):
                    r.log_metric("x", float(v))
                r.log_metric("y", 1.0)
                track.flush()
    """)
    for trial in range(6):
        p = subprocess.Popen([sys.executable, "-c", code],
                             env=child_env(store), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        run_id = p.stdout.readline().strip()
        assert run_id, p.communicate(timeout=30)[1]
        time.sleep(float(rng.uniform(0.05, 0.4)))
        p.kill()
        p.communicate(timeout=30)
        info = track.get_run(run_id, store=store)
        r = track.open_run(run_id, store=store)
        for key, m in info["metrics"].items():
            v = r.metric_history(key)["value"]
            assert m["n"] == len(v), (trial, key)
            assert (m["min"], m["max"], m["last"]) == \
                (v.min(), v.max(), v.iloc[-1])


def test_eight_processes_at_once(store, tmp_path, rng):
    # each registers a model of its own and promotes it, while the others
    # create their runs in one new experiment and log metrics
    files = []
    for k in range(8):
        X = rng.standard_normal((60, 3))
        path = str(tmp_path / f"m{k}.swm")
        sw.PassiveAggressiveClassifier(C=0.1 * (k + 1)).fit(
            X, (X[:, 0] > 0).astype(int)).save(path)
        files.append(path)
    code = textwrap.dedent("""
        import sys
        from streamwise import registry, track
        k = int(sys.argv[1])
        with track.run(experiment="stress", name=f"w{k}",
                       params={"worker": k}) as r:
            for i in range(10000):
                r.log_metric("v", float(i), step=i)
                if i % 2500 == 0:
                    r.set_tag(f"t{i}", i)
                if i == 5000:
                    v = registry.register(sys.argv[2], "shared")
                    registry.promote("shared", v, reason=f"w{k}")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), files[k]],
                              env=child_env(store), stderr=subprocess.PIPE,
                              text=True) for k in range(8)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errs
    assert not any("locked" in e for e in errs)
    df = track.search_runs(experiment="stress", store=store)
    assert len(df) == 8 and set(df["status"]) == {"FINISHED"}
    assert sorted(df["name"]) == [f"w{k}" for k in range(8)]
    assert list(df["metrics.v"]) == [9999.0] * 8
    for rid in df["run_id"]:
        h = track.open_run(rid, store=store).metric_history("v")
        assert h["step"].tolist() == list(range(10000))
        assert track.get_run(rid, store=store)["metrics"]["v"]["n"] == 10000
    # one experiment, created once; 8 versions; 8 promotions, generations
    # 1..8 each once, the alias at the last one
    st = get_store(store)
    assert st.read("SELECT count(*) FROM experiments WHERE name = ?",
                   ("stress",)) == [(1,)]
    vs = registry.versions("shared", store=store)
    assert sorted(vs["version"]) == list(range(1, 9))
    h = registry.history("shared", store=store)
    assert sorted(h["generation"]) == list(range(1, 9))
    assert sorted(h["reason"]) == [f"w{k}" for k in range(8)]
    last = h.sort_values("generation").iloc[-1]
    assert registry.resolve("shared@champion", store=store).version == \
        last["new_version"]
    assert list(h.sort_values("generation")["old_version"][1:]) == \
        list(h.sort_values("generation")["new_version"][:-1])


def test_an_unknown_scheme_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for uri in ("mysql://me@host/db", "s3://bucket/runs"):
        with pytest.raises(StoreError, match=r"unknown scheme .* postgresql"):
            track.search_runs(store=uri)
        monkeypatch.setenv("STREAMWISE_TRACKING_URI", uri)
        with pytest.raises(StoreError, match="unknown scheme"):
            with track.run():
                pass
    assert os.listdir(tmp_path) == []      # no directory named "mysql:"
    monkeypatch.setenv("STREAMWISE_TRACKING_URI", f"file:{tmp_path}/r")
    with track.run():
        pass
    assert os.path.exists(tmp_path / "r" / "streamwise.db")


def test_a_postgresql_server_that_goes_away_mid_run(tmp_path):
    # a server of its own, stopped as by a crash and started again
    from streamwise._pgserver import LocalPostgres
    pg = LocalPostgres(port=None, settings={"fsync": "off"}).start()
    try:
        uri = pg.database("gone")
        get_store(uri, artifact_root=str(tmp_path / "art"))
        r = track.start_run(experiment="e", store=uri)
        for i in range(1000):
            r.log_metric("x", float(i), step=i)
        track.flush()
        pg.stop(mode="immediate")
        for i in range(1000, 1500):
            r.log_metric("x", float(i), step=i)
        with pytest.raises(StoreError, match="cannot be reached"):
            r.end()
        # back: the points kept in this process go in, in order, once;
        # the run is FAILED and says why
        pg.start()
        track.flush()
        info = track.get_run(r.id, store=uri)
        assert info["status"] == "FAILED"
        assert "unreachable when the run ended" in \
            info["tags"]["streamwise.failure"]
        h = track.open_run(r.id, store=uri).metric_history("x")
        assert h["step"].tolist() == list(range(1500))
        assert info["metrics"]["x"]["n"] == 1500
        # nothing half-written: a write cut by the server's going away
        # leaves no points without their summary
        st = get_store(uri)
        assert st.read("SELECT count(*) FROM metric_points") == [(1500,)]
    finally:
        pg.close()


def test_corrupt_database_is_refused_untouched(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    db = root / "streamwise.db"
    junk = b"this is not a database, just some bytes " * 200
    db.write_bytes(junk)
    with pytest.raises(StoreError, match="left untouched"):
        with track.run(store=str(root)):
            pass
    assert db.read_bytes() == junk
    assert isinstance(StoreError("x"), sw.FormatError)
    # a SQLite file of someone else's
    other = tmp_path / "other"
    other.mkdir()
    con = sqlite3.connect(other / "streamwise.db")
    con.execute("CREATE TABLE mine (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a streamwise store"):
        track.search_runs(store=str(other))


def test_newer_schema_is_refused(store):
    with track.run(store=store):
        pass
    raw_sql(store, "UPDATE schema_version SET version = 99")
    code = ("from streamwise import track\n"
            "track.search_runs()\n")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(store),
                         capture_output=True, text=True)
    assert out.returncode != 0 and "schema 99 is newer" in out.stderr


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_an_older_store_is_migrated_in_place(kind, tmp_path, request):
    # a store as streamwise wrote it at schema 2, with a run in it
    from streamwise.store import render
    if kind == "sqlite":
        root = str(tmp_path / "old")
        os.makedirs(root)
        con = sqlite3.connect(os.path.join(root, "streamwise.db"))
        run = con.execute
    else:
        import psycopg2
        root = request.getfixturevalue("pg_server").database("old_schema")
        con = psycopg2.connect(root)
        cur = con.cursor()
        run = cur.execute
    run("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    run("INSERT INTO schema_version VALUES (2)")
    for v in (1, 2):
        for sql in render(v, kind):
            run(sql)
    if kind == "postgresql":
        run("INSERT INTO settings VALUES ('artifact_root', %s)",
            (str(tmp_path / "art"),))
    run("INSERT INTO experiments (name, created) VALUES ('old', 1.0)")
    run("INSERT INTO runs (run_id, experiment_id, name, status, start_time) "
        f"VALUES ('{'a' * 32}', 1, 'before', 'FINISHED', 1.0)")
    run("INSERT INTO deployments (name, ref, version, runner, status, "
        "reason, at) VALUES ('m', 'm@champion', 1, 'r', 'serving', 'x', 1.0)")
    con.commit()
    con.close()
    with track.run(experiment="old", name="after", store=root) as r:
        for i in range(1000):
            r.log_metric("m", float(i), step=i)
    st = get_store(root)
    assert st.read("SELECT version FROM schema_version") == [(4,)]
    # schema 4: the deployment log takes "retired", keeps its rows and
    # stays append-only (SQLite built the table again)
    assert st.read("SELECT name, status FROM deployments") == \
        [("m", "serving")]

    def retired(con):
        con.execute("INSERT INTO deployments (name, ref, version, runner, "
                    "status, reason, at) VALUES ('m', 'm@champion', 1, 'r', "
                    "'retired', 'y', 2.0)")
    st.write(retired)
    with pytest.raises(Exception, match="append-only"):
        st.write(lambda con: con.execute("UPDATE deployments SET "
                                         "reason = 'z'"))
    with pytest.raises(Exception, match="status"):
        st.write(lambda con: con.execute(
            "INSERT INTO deployments (name, ref, runner, status, reason, at) "
            "VALUES ('m', 'm', 'r', 'gone', 'y', 3.0)"))
    assert sorted(track.search_runs(store=root)["name"]) == ["after",
                                                            "before"]
    assert r.metric_history("m")["step"].tolist() == list(range(1000))
    if kind == "postgresql":
        assert get_store(root).read(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = "
            "'metric_points'::regclass AND contype = 'f'") == [(0,)]


def test_search_filters(store):
    specs = [("a", "pa", 0.1, 0.91, "ads"), ("b", "pa", 1.0, 0.72, "ads"),
             ("c", "gbdt", 0.1, 0.95, None), ("d", "scw", 1.0, 0.55, "x"),
             ("e", "gbdt", 10.0, None, "ads")]
    for name, model, C, auc, team in specs:
        tags = {"team": team} if team else {}
        with track.run(experiment="s", name=name, params={"model": model,
                       "C": C}, tags=tags, store=store) as r:
            if auc is not None:
                r.log_metric("auc", auc)

    def names(f, **kw):
        return sorted(track.search_runs(f, store=store, **kw)["name"])

    assert names("metrics.auc > 0.7 AND (params.model = 'gbdt' OR "
                 "params.model = 'pa')") == ["a", "b", "c"]
    assert names("metrics.auc > 0.7 AND params.model = 'gbdt' OR "
                 "params.model = 'scw'") == ["c", "d"]
    assert names("NOT params.model = 'pa'") == ["c", "d", "e"]
    assert names("params.C IN (0.1, 10)") == ["a", "c", "e"]
    assert names("params.C >= 1") == ["b", "d", "e"]
    assert names("tags.team = \"ads\" AND metrics.auc IS NOT NULL") == \
        ["a", "b"]
    assert names("metrics.auc IS NULL") == ["e"]
    assert names("name LIKE 'a%' OR status != 'FINISHED'") == ["a"]
    assert names("experiment = 's' AND metrics.`auc` < 0.6") == ["d"]
    ordered = track.search_runs(order_by=["metrics.auc DESC"], store=store)
    assert list(ordered["name"]) == ["c", "a", "b", "d", "e"]
    assert list(track.search_runs(order_by=["params.C ASC", "name DESC"],
                                  max_results=2, store=store)["name"]) == \
        ["c", "a"]


@pytest.mark.parametrize("text,pos,what", [
    ("metrics.auc > AND x", 14, "expected a number or a quoted string"),
    ("metrics.auc >> 1", 13, "expected a number"),
    ("(metrics.auc > 1", 16, "expected ')'"),
    ("metrics.auc 0.5", 12, "expected a comparison"),
    ("params.a = 'x' AND", 18, "expected a field"),
    ("colour = 'red'", 0, "unknown field 'colour'"),
    ("metrics.auc > 1 params.a = 'b'", 16, "expected AND, OR or the end"),
    ("metrics.auc ~ 1", 12, "unexpected character '~'"),
])
def test_filter_errors_point_at_the_position(store, text, pos, what):
    with pytest.raises(sw.InvalidArgument) as e:
        track.search_runs(text, store=store)
    msg = str(e.value)
    assert f"position {pos}" in msg and what in msg
    lines = msg.splitlines()
    assert lines[-1].index("^") - 4 == pos and lines[-2].strip() == text


def test_compare_runs_figure(store):
    import matplotlib
    matplotlib.use("Agg")
    from streamwise import plots
    t0 = np.datetime64("2026-11-01T00:00:00")
    runs = []
    for name in ("pa", "scw"):
        with track.run(experiment="cmp", name=name, store=store) as r:
            for i in range(50):
                r.log_metric("acc", 0.5 + i / 100, step=i * 10,
                             event_time=t0 + np.timedelta64(i, "m"))
        runs.append(r)
    fig = plots.compare_runs(runs, "acc", x="event_time")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and len(lines[0].get_xdata()) == 50
    fig2 = plots.compare_runs([runs[0].id], "acc", x="step", store=store)
    assert list(fig2.axes[0].get_lines()[0].get_xdata())[:3] == [0, 10, 20]


def test_artifacts_and_models(store, tmp_path, rng):
    X = rng.standard_normal((50, 3))
    y = (X[:, 0] > 0).astype(int)
    note = tmp_path / "notes.txt"
    note.write_text("hello")
    with track.run(store=store) as r:
        est = sw.PassiveAggressiveClassifier().fit(X, y)
        path = r.log_model(est, "pa")
        art = r.log_artifact(str(note))
    assert sw.load(path).decision_function(X).tobytes() == \
        est.decision_function(X).tobytes()
    assert open(art).read() == "hello"
    assert len(track.get_run(r.id, store=store)["artifacts"]) == 2
