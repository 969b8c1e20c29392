"""The tracking store on both backends in one run: SQLite (the embedded
default) and PostgreSQL (a team's shared store), beside MLflow and the
per-point commit loggers that a tracking client without batching amounts
to.

    make bench     # or, after make peers:
    PYTHONPATH=python build/peers/bin/python benchmarks/tracking.py
        [--points 100000] [--writers 8] [--runs 10000] [--repeat 3]

What each row times:

- 100k metric points: `run.log_metric(key, value, step=i, event_time=t)`
  in a loop, until the run has ended and every point is durable (the
  flush is included). SQLite keeps points in the run's directory, one
  summary row per metric; PostgreSQL COPYs them into metric_points in the
  transaction that updates the summary.
- peers: one INSERT and one COMMIT per point, into a SQLite file (WAL,
  synchronous NORMAL as our store) and into the same PostgreSQL server.
  A per-point commit on PostgreSQL waits for a WAL flush, so that peer
  logs --peer-points points (the table says how many) and its time is
  per point as measured on those.
- MLflow (the peer a user would pick instead; `make peers` installs it):
  `mlflow.log_metric(key, value, step=i)` per point in an active run, on
  its file store and on its SQLite and PostgreSQL (the same server)
  backends, over --mlflow-points points;
  and `MlflowClient.log_batch` with 1,000 metrics a call (its limit) over
  --points points. Creating the store (MLflow's SQLite backend runs its
  migrations then) is outside the time; starting and ending the run is
  inside, as for streamwise.
- 8 concurrent writers: --writers processes at once, each creating a run
  in one shared experiment, logging points/writers points and a tag,
  and ending it; wall time from the first start to the last exit,
  process start-up (importing streamwise) included.
- search over 10k runs: --runs runs with params, metrics and a tag are
  put in the store in one transaction of plain INSERTs (the benchmark
  measures search, not run creation); then `track.search_runs` with an
  AND/OR filter ordered by a metric, and with a LIKE on a tag; median of
  5 queries each after one unmeasured query.

The PostgreSQL server is Debian's, made with initdb in a temporary
directory and started on loopback by `store.local_postgres()` with
PostgreSQL's default durability (fsync and synchronous_commit on); each
repetition uses a fresh database, as SQLite a fresh directory.
Repetitions alternate the order of the backends (A B, B A, ...); the
table shows medians and ranges.
"""
import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(HERE, "..", "python")
sys.path.insert(0, PYDIR)

from streamwise import store as sw_store, track  # noqa: E402

SEARCHES = [
    ("AND/OR filter, order by metric",
     "metrics.auc > 0.9 AND (params.model = 'gbdt' OR params.model = 'pa')",
     ["metrics.auc DESC"]),
    ("LIKE on a tag",
     "tags.team LIKE 'ranking%' AND params.lr < 0.05", None),
]


class Backend:
    def __init__(self, kind, pg):
        self.kind, self.pg, self.n = kind, pg, 0

    def fresh(self, tmp):
        """A new empty store: its handle and the environment a child
        process needs to reach it."""
        self.n += 1
        if self.kind == "sqlite":
            root = os.path.join(tmp, f"sqlite{self.n}")
            return (sw_store.get_store(root),
                    {"STREAMWISE_TRACKING_URI": root})
        uri = self.pg.database(f"bench{self.n}")
        art = os.path.join(tmp, f"artifacts{self.n}")
        os.makedirs(art)
        return (sw_store.get_store(uri, artifact_root=art),
                {"STREAMWISE_TRACKING_URI": uri,
                 "STREAMWISE_ARTIFACT_ROOT": art})


def log_points(st, n):
    t0 = time.perf_counter()
    with track.run(experiment="bench", store=st) as r:
        log = r.log_metric
        for i in range(n):
            log("loss", 1.0 / (i + 1), step=i, event_time=i * 1000)
    wall = time.perf_counter() - t0
    assert track.get_run(r.id, store=st)["metrics"]["loss"]["n"] == n
    assert len(r.metric_history("loss")) == n
    return wall


def peer_sqlite(tmp, n):
    con = sqlite3.connect(os.path.join(tmp, f"naive{uuid.uuid4().hex}.db"),
                          isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("CREATE TABLE points (run_id TEXT, key TEXT, step INTEGER, "
                "event_time INTEGER, wall_time REAL, value REAL)")
    t0 = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)",
                    ("r", "loss", i, i * 1000, time.time(), 1.0 / (i + 1)))
        con.execute("COMMIT")
    wall = time.perf_counter() - t0
    con.close()
    return wall


def peer_pg(pg, n):
    import psycopg2
    db = f"naive{uuid.uuid4().hex[:8]}"
    con = psycopg2.connect(pg.database(db))
    cur = con.cursor()
    cur.execute("CREATE TABLE points (run_id TEXT, key TEXT, step BIGINT, "
                "event_time BIGINT, wall_time DOUBLE PRECISION, "
                "value DOUBLE PRECISION)")
    con.commit()
    t0 = time.perf_counter()
    for i in range(n):
        cur.execute("INSERT INTO points VALUES (%s, %s, %s, %s, %s, %s)",
                    ("r", "loss", i, i * 1000, time.time(), 1.0 / (i + 1)))
        con.commit()
    wall = time.perf_counter() - t0
    con.close()
    return wall


def mlflow_points(tmp, backend, n, batch, pg):
    """MLflow logging n points: one log_metric call a point (batch=None)
    or log_batch calls of `batch` metrics."""
    # MLflow 3 keeps its file store in maintenance mode behind this switch
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    where = os.path.join(tmp, f"mlflow{uuid.uuid4().hex[:8]}")
    os.makedirs(where)
    uri = {"sqlite": f"sqlite:///{where}/mlflow.db",
           "file": f"file://{where}/mlruns",
           # psycopg2 (Debian's), which streamwise uses too
           "postgresql": pg.database(f"mlflow{uuid.uuid4().hex[:8]}")
           .replace("postgresql://", "postgresql+psycopg2://")
           if backend == "postgresql" else None}[backend]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp) as r:
        if batch is None:
            for i in range(n):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        else:
            ts = int(time.time() * 1000)
            for lo in range(0, n, batch):
                client.log_batch(r.info.run_id, metrics=[
                    Metric("loss", 1.0 / (i + 1), ts, i)
                    for i in range(lo, min(n, lo + batch))])
    wall = time.perf_counter() - t0
    got = client.get_metric_history(r.info.run_id, "loss")
    assert len(got) == n, (len(got), n)
    return wall


WRITER = """
import sys, time
from streamwise import track
k, n = int(sys.argv[1]), int(sys.argv[2])
with track.run(experiment="writers", name=f"w{k}") as r:
    for i in range(n):
        r.log_metric("v", float(i), step=i)
    r.set_tag("worker", k)
"""


def writers(st, env, w, n_each):
    child = dict(os.environ, PYTHONPATH=PYDIR, **env)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(k),
                               str(n_each)], env=child,
                              stderr=subprocess.PIPE, text=True)
             for k in range(w)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    wall = time.perf_counter() - t0
    assert [p.returncode for p in procs] == [0] * w, errs
    df = track.search_runs(experiment="writers", store=st)
    assert len(df) == w and set(df["status"]) == {"FINISHED"}, df
    for rid in df["run_id"]:
        assert track.get_run(rid, store=st)["metrics"]["v"]["n"] == n_each
    return wall


def populate(st, n_runs, seed=7):
    rnd = random.Random(seed)
    models = ["gbdt", "pa", "scw", "als"]
    teams = ["ranking-eu", "ranking-us", "fraud", "offers"]
    now = time.time()

    def put(con):
        con.execute("INSERT INTO experiments (name, created) VALUES (?, ?)",
                    ("search", now))
        eid = con.execute("SELECT experiment_id FROM experiments WHERE "
                          "name = ?", ("search",)).fetchone()[0]
        for i in range(n_runs):
            rid = uuid.UUID(int=rnd.getrandbits(128)).hex
            con.execute("INSERT INTO runs (run_id, experiment_id, name, "
                        "status, start_time, end_time) VALUES "
                        "(?, ?, ?, ?, ?, ?)",
                        (rid, eid, f"r{i}", "FINISHED", now + i, now + i + 1))
            for k, v in (("model", models[i % 4]),
                         ("lr", repr(round(rnd.uniform(0.001, 0.3), 4))),
                         ("seed", str(i))):
                con.execute("INSERT INTO params VALUES (?, ?, ?)", (rid, k, v))
            con.execute("INSERT INTO tags VALUES (?, ?, ?)",
                        (rid, "team", teams[rnd.randrange(4)]))
            for k, v in (("auc", rnd.uniform(0.5, 1.0)),
                         ("logloss", rnd.uniform(0.1, 0.7))):
                con.execute("INSERT INTO metrics (run_id, key, series, n, "
                            "last_value, min_value, max_value, last_step) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (rid, k, "", 1, v, v, v, 0))
    st.write(put)


def search(st, flt, order):
    track.search_runs(flt, order_by=order, max_results=100,
                      experiment="search", store=st)
    times, found = [], None
    for _ in range(5):
        t0 = time.perf_counter()
        df = track.search_runs(flt, order_by=order, max_results=100,
                               experiment="search", store=st)
        times.append(time.perf_counter() - t0)
        found = len(df)
    assert found > 0
    return statistics.median(times), found


MLFLOW_BACKENDS = ("file", "sqlite", "postgresql")
MLFLOW_ONE = "peer: MLflow log_metric per point"
MLFLOW_BATCH = "peer: MLflow log_batch, 1,000 a call"


def fmt(xs, unit=1.0):
    xs = [x * unit for x in xs]
    med = statistics.median(xs)
    return med, f"{med:9.3f}  [{min(xs):.3f}-{max(xs):.3f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--peer-points", type=int, default=20_000,
                    help="points the per-point-commit PostgreSQL peer logs")
    ap.add_argument("--mlflow-points", type=int, default=2_000,
                    help="points MLflow's per-point loggers log")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    res = {}
    try:
        import logging
        import mlflow  # noqa: F401
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)
        have_mlflow = True
    except ImportError:
        have_mlflow = False
        print("tracking.py: MLflow is not installed here; `make peers` "
              "installs it and `make bench` runs this on build/peers",
              file=sys.stderr)

    def rec(key, v):
        res.setdefault(key, []).append(v)

    with sw_store.local_postgres() as pg, \
            tempfile.TemporaryDirectory() as tmp:
        backends = [Backend("sqlite", None), Backend("postgresql", pg)]
        for rep in range(args.repeat):
            order = backends if rep % 2 == 0 else backends[::-1]
            for b in order:
                st, env = b.fresh(tmp)
                rec(("points", b.kind), log_points(st, args.points))
                rec(("writers", b.kind),
                    writers(st, env, args.writers,
                            args.points // args.writers))
                populate(st, args.runs)
                for name, flt, o in SEARCHES:
                    t, found = search(st, flt, o)
                    rec(("search", b.kind, name), t)
                    res[("found", b.kind, name)] = found
            # the peers, alternating too
            peers = [(("peer", "sqlite"),
                      lambda: peer_sqlite(tmp, args.points)),
                     (("peer", "postgresql"),
                      lambda: peer_pg(pg, args.peer_points))]
            if have_mlflow:
                for be in MLFLOW_BACKENDS:
                    peers.append(((MLFLOW_ONE, be), lambda be=be: mlflow_points(
                        tmp, be, args.mlflow_points, None, pg)))
                    peers.append(((MLFLOW_BATCH, be), lambda be=be: mlflow_points(
                        tmp, be, args.points, 1000, pg)))
            for key, fn in (peers if rep % 2 == 0 else peers[::-1]):
                rec(key, fn())
        server = subprocess.run(
            [os.path.join(pg._bin, "postgres"), "--version"],
            capture_output=True, text=True).stdout.strip()

    n, w = args.points, args.writers
    print(f"\ntracking store, both backends in one run: median "
          f"[min-max] of {args.repeat} alternating repetitions")
    print(f"SQLite {sqlite3.sqlite_version}; {server}, fsync on, "
          f"synchronous_commit on, loopback; load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print(f"{'what':52s} {'backend':17s} {'n':>7s} {'seconds':>22s} "
          f"{'us/point':>9s} {'vs sw':>7s}")
    for kind in ("sqlite", "postgresql"):
        base, s = fmt(res[("points", kind)])
        print(f"{f'streamwise log_metric, {n:,} points':52s} {kind:17s} "
              f"{n:7d} {s:>22s} {base / n * 1e6:9.2f} {1.0:6.1f}x")
        pn = n if kind == "sqlite" else args.peer_points
        m, s = fmt(res[("peer", kind)])
        print(f"{'peer: INSERT + COMMIT per point':52s} {kind:17s} "
              f"{pn:7d} {s:>22s} {m / pn * 1e6:9.2f} "
              f"{(m / pn) / (base / n):6.1f}x")
    if have_mlflow:
        import mlflow
        for label, pn in ((MLFLOW_ONE, args.mlflow_points),
                          (MLFLOW_BATCH, n)):
            for be in MLFLOW_BACKENDS:
                ours = "postgresql" if be == "postgresql" else "sqlite"
                sw_point = statistics.median(res[("points", ours)]) / n
                m, s = fmt(res[(label, be)])
                print(f"{label + ' ' + mlflow.__version__:52s} "
                      f"{'mlflow ' + be:17s} {pn:7d} {s:>22s} "
                      f"{m / pn * 1e6:9.2f} {(m / pn) / sw_point:6.1f}x")
        print("(MLflow's 'vs sw' is against streamwise on the same database "
              "kind; its file store against streamwise's SQLite store)")
    print()
    for kind in ("sqlite", "postgresql"):
        m, s = fmt(res[("writers", kind)])
        print(f"{f'{w} processes at once, {n // w:,} points each':52s} "
              f"{kind:17s} {n // w * w:7d} {s:>22s} "
              f"{m / (n // w * w) * 1e6:9.2f}")
    print()
    for name, _, _ in SEARCHES:
        for kind in ("sqlite", "postgresql"):
            m, s = fmt(res[("search", kind, name)])
            label = f"search {args.runs:,} runs: {name}"
            print(f"{label:52s} {kind:17s} "
                  f"{res[('found', kind, name)]:7d} {s:>22s}")
    print("\n(n for searches: runs returned, at most 100)")


if __name__ == "__main__":
    main()
