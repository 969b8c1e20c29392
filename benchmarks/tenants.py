"""Tenants: 100 tenants with small models of their own beside one model for
every event, in the same run, alternating; and one tenant's corrupt model
refused while the others are scored.

    PYTHONPATH=python /usr/bin/python3 benchmarks/tenants.py [--events N]
        [--tenants T] [--reps R]

Events: JSON-like rows {ts, user, shop, item, price, click} in an HDF5
event file (so the broker is not measured), T shops uniform, 20,000 users.
Pipeline: benchmarks/runner.py's dense aggregations keyed by user. Models:
an SCW-I on the dense features per shop (registered as shop-<i>), and one
of them for everyone. Each run is `sw-serve run` over the whole file,
timed by /usr/bin/time (wall seconds and peak resident memory); the
single-model and tenant jobs alternate R times. Then shop-7's registered
file is damaged and the tenant job runs once more: events by shop, scored
and dead-lettered.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import streamwise as sw  # noqa: E402
from streamwise import registry, serve  # noqa: E402
from streamwise.hdf5 import write_events  # noqa: E402

import runner as rb  # noqa: E402

SPEC = dict(rb.SPEC, features=rb.SPEC["features"][:-1],   # dense only
            events={"time": "ts", "time_unit": "us",
                    "fields": dict(rb.SPEC["events"]["fields"], shop="str")})


def columns(n, tenants, seed):
    c = rb.columns(n, seed=seed, users=20_000)
    rng = np.random.default_rng(seed + 1)
    c["user"] = np.array([f"u{u}" for u in c["user"]])
    c["shop"] = np.array([f"shop{s}" for s in rng.integers(0, tenants, n)])
    return c


def timed(job_path):
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M",
                        serve.runner_program(), "run", job_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    wall, rss = r.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss) / 1024, r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sw-tenants-")
    store = os.path.join(work, "store")
    train = columns(60_000, a.tenants, seed=1)
    p = sw.Pipeline(SPEC, emission="arrival")
    out = p.push(train)
    X, y = serve.features(out, sparse=False), train["click"][out.index]
    shops = train["shop"][out.index]
    for t in range(a.tenants):
        sel = shops == f"shop{t}"
        m = sw.SCWClassifier().fit(X[sel], y[sel])
        path = os.path.join(work, f"shop{t}.swm")
        m.save(path, pipeline=p, sparse=False)
        v = registry.register(path, f"shop-shop{t}", store=store)
        registry.promote(f"shop-shop{t}", v, reason="bench", store=store)
    events = os.path.join(work, "events.h5")
    write_events(events, "order", columns(a.events, a.tenants, seed=7),
                 SPEC)
    jobs = {}
    for name, tenants in [("one model", None),
                          (f"{a.tenants} tenants", {
                              "field": "shop", "model": "shop-{}@champion",
                              "max_loaded": a.tenants})]:
        job = serve.Job(serve.hdf5_source(events, "order"),
                        "shop-shop0@champion", registry=store, key="user",
                        sinks=[serve.jsonl(os.path.join(work, "o.jsonl"))],
                        dead_letters=serve.jsonl(
                            os.path.join(work, "dead.jsonl")),
                        reload=False, tenants=tenants, log_every_s=0)
        jobs[name] = job.save(os.path.join(work, f"{len(jobs)}.json"))
    res = {k: [] for k in jobs}
    for _ in range(a.reps):
        for name, path in jobs.items():
            wall, rss, _ = timed(path)
            res[name].append((a.events / wall, rss))
    load = os.getloadavg()
    print(f"\ntenants, {time.strftime('%Y-%m-%d')}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {a.events:,} events "
          f"from HDF5, median of {a.reps} alternating runs (range)")
    print("| job | events/s | peak RSS MiB |")
    print("|---|---|---|")
    for name, rs in res.items():
        eps = sorted(r[0] for r in rs)
        mem = sorted(r[1] for r in rs)
        print(f"| {name} | {np.median(eps):,.0f} ({eps[0]:,.0f}.."
              f"{eps[-1]:,.0f}) | {np.median(mem):.0f} ({mem[0]:.0f}.."
              f"{mem[-1]:.0f}) |")
    # one tenant's file damaged after registration
    bad = registry.resolve("shop-shop7@champion", store=store).path
    with open(bad, "r+b") as f:
        f.seek(150)
        byte = f.read(1)
        f.seek(150)
        f.write(bytes([byte[0] ^ 0xFF]))
    _, _, log = timed(jobs[f"{a.tenants} tenants"])
    scored, dead = {}, {}
    with open(os.path.join(work, "o.jsonl")) as f:
        for line in f:
            t = json.loads(line)["tenant"]
            scored[t] = scored.get(t, 0) + 1
    with open(os.path.join(work, "dead.jsonl")) as f:
        for line in f:
            dead[json.loads(line)["reason"]] = \
                dead.get(json.loads(line)["reason"], 0) + 1
    want = columns(a.events, a.tenants, seed=7)["shop"]
    n7 = int((want == "shop7").sum())
    others_ok = all(scored.get(f"shop{t}", 0) == int((want == f"shop{t}")
                                                     .sum())
                    for t in range(a.tenants) if t != 7)
    print(f"\nshop7's model damaged: {dead.get('tenant_refused', 0):,} of its "
          f"{n7:,} events dead-lettered (tenant_refused), {scored.get('shop7', 0)}"
          f" scored; the other {a.tenants - 1} tenants scored all their "
          f"events: {others_ok}")
    print([line for line in log.splitlines() if "refused" in line][0][:200])


if __name__ == "__main__":
    main()
