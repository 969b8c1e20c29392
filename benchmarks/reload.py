"""Hot reload under load: how long the scoring loop waits while a 100-tree,
255-leaf GBDT bundle is swapped in, how soon a promotion serves, and that
across ten swaps no event is lost or scored twice.

    PYTHONPATH=python /usr/bin/python3 benchmarks/reload.py [--events N]
        [--swaps K]

Eleven GBDT bundles (100 trees of 255 leaves, the pipeline of
benchmarks/runner.py, learning rates 0.100 .. 0.120 so each is another
model) are registered in a fresh tracking store. `sw-serve run` follows
fraud@champion (polling the store every 0.2 s) on a 4-partition topic of
the embedded broker. The events are produced in K + 1 chunks; after each
chunk is scored, the next version is promoted and the time until the
runner's /status names it is measured. The runner's own metric
sw_model_swap_max_seconds is the longest the loop waited for a swap (the
verification runs on the reload thread). No peer serves a streaming
pipeline and swaps its model in place, so this table has no peer column:
it checks a property, not a race.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "experiments"))

import streamwise as sw  # noqa: E402
from streamwise import registry, serve  # noqa: E402

import betting  # noqa: E402  (the demo's producer)
import runner as rb  # noqa: E402  (the runner benchmark's spec and events)


def bundles(work, k):
    c = rb.columns(100_000, seed=1)
    c["user"] = np.array([f"u{u}" for u in c["user"]], dtype=object)
    p = sw.Pipeline(rb.SPEC, emission="arrival")
    X = serve.features(p.push(c), sparse=False)
    paths = []
    for i in range(k + 1):
        m = sw.GBDTClassifier(n_estimators=100, num_leaves=255,
                              learning_rate=0.1 + 0.002 * i)
        m.fit(X, c["click"])
        assert m._model.gbdt_info[0] == 100
        path = os.path.join(work, f"v{i + 1}.swm")
        m.save(path, pipeline=p, sparse=False)
        paths.append(path)
    return paths


def messages(n, seed):
    c = rb.columns(n, seed=seed)
    keys = [f"u{u}" for u in c["user"]]
    values = [json.dumps({"ts": int(c["ts"][i]), "user": keys[i],
                          "item": int(c["item"][i]),
                          "price": float(c["price"][i]),
                          "click": int(c["click"][i])},
                         separators=(",", ":")) for i in range(n)]
    return keys, values


def wait(cond, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--swaps", type=int, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sw-reload-")
    store = os.path.join(work, "store")
    t0 = time.time()
    paths = bundles(work, a.swaps)
    print(f"trained {len(paths)} bundles in {time.time() - t0:.0f} s "
          f"({os.path.getsize(paths[0]) / 1e6:.1f} MB each)")
    for p in paths:
        registry.register(p, "fraud", store=store)
    registry.promote("fraud", 1, reason="start", store=store)
    keys, values = messages(a.events, seed=5)
    cut = [a.events * i // (a.swaps + 1) for i in range(a.swaps + 2)]
    deploy = []
    with sw.kafka.local_broker(partitions=4) as b:
        b.create_topic("bets", 4)
        port = rb.free_port()
        out = os.path.join(work, "out.jsonl")
        job = serve.Job(serve.kafka_source("bets", b.bootstrap, group="g"),
                        "fraud@champion", registry=store, key="user",
                        sinks=[serve.jsonl(out)], metrics_port=port,
                        reload={"poll_s": 0.2}, log_every_s=0)
        proc, log = rb.start_runner(job, work, "reload")
        try:
            rb.wait_ready(port, proc)
            for i in range(a.swaps + 1):
                betting.produce(b.bootstrap, "bets", keys[cut[i]:cut[i + 1]],
                                values[cut[i]:cut[i + 1]])
                wait(lambda: rb.status(port)["predictions"] >= cut[i + 1],
                     120, f"chunk {i}")
                if i == a.swaps:
                    break
                t = time.time()
                registry.promote("fraud", i + 2, reason="next", store=store)
                wait(lambda: rb.status(port)["model"] == f"fraud@{i + 2}",
                     30, f"version {i + 2}")
                deploy.append(time.time() - t)
            m = rb.metrics(port)
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    seen, versions = set(), {}
    twice = 0
    with open(out) as f:
        for line in f:
            d = json.loads(line)
            k = (d["partition"], d["offset"])
            twice += k in seen
            seen.add(k)
            versions[d["model"]] = versions.get(d["model"], 0) + 1
    load = os.getloadavg()
    print(f"\nhot reload, {time.strftime('%Y-%m-%d')}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| events | swaps | versions scoring | lost | scored twice | "
          "loop's longest swap wait | promotion to serving (median, range) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {a.events:,} | {int(m['sw_model_reloads_total'])} | "
          f"{len(versions)} | {a.events - len(seen)} | {twice} | "
          f"{m['sw_model_swap_max_seconds'] * 1e6:.0f} us | "
          f"{np.median(deploy):.2f} s ({min(deploy):.2f}..{max(deploy):.2f}) |")
    print(f"refusals: {int(m['sw_model_refusals_total'])}")


if __name__ == "__main__":
    main()
