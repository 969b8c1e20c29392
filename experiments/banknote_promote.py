"""Train two streamwise learners on banknote, track both runs, compare
them, register the better model and promote it with the comparison as
evidence; then show the promotion history and resolve the champion through
the C lookup the runner uses.

    PYTHONPATH=python /usr/bin/python3 experiments/banknote_promote.py \
        [--store DIR] [--data DIR]

The replay is banknote in a fixed shuffled order (seed 0), unscaled, one
row at a time (prequential): every 50 rows each run logs its running
accuracy with step = rows consumed and a synthetic event time (one row a
second from 2026-11-01), so the runs can be compared over event time.
"""
import argparse
import datetime as dt
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import streamwise as sw  # noqa: E402
from streamwise import datasets, registry, track  # noqa: E402

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def replay_run(label, est, X, y, store, data_dir):
    with track.run(experiment="banknote", name=label,
                   params={"model": label, **est.get_params()},
                   tags={"data": "banknote", "order": "shuffled seed 0"},
                   store=store) as run:
        run.log_input({"kind": "file", "path": os.path.join(
            datasets.data_dir(data_dir), "banknote",
            "data_banknote_authentication.txt"), "rows": [0, len(y)],
            "order": "numpy default_rng(0).permutation"})
        acc = sw.evaluate.prequential(est, X, y)
        for i in range(49, len(y), 50):
            run.log_metric("prequential_acc", acc[i], step=i + 1,
                           event_time=T0 + dt.timedelta(seconds=i))
        run.log_metric("prequential_acc", acc[-1], step=len(y),
                       event_time=T0 + dt.timedelta(seconds=len(y) - 1))
        path = run.log_model(est, label)
    return run, float(acc[-1]), path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=os.path.join(ROOT, "experiments", "out",
                                                    "runs"))
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    X, y = datasets.load_banknote(args.data, seed=0)

    results = [replay_run("pa1", sw.PassiveAggressiveClassifier(), X, y,
                          args.store, args.data),
               replay_run("scw1", sw.SCWClassifier(), X, y, args.store,
                          args.data)]
    print("runs compared on the same replay:")
    print(track.search_runs("experiment = 'banknote' AND tags.data = "
                            "'banknote'", order_by=["metrics.prequential_acc "
                                                    "DESC"],
                            max_results=2, store=args.store)
          [["run_id", "name", "metrics.prequential_acc"]].to_string(
              index=False))

    best = max(results, key=lambda r: r[1])
    other = min(results, key=lambda r: r[1])
    version = registry.register(best[2], "banknote", store=args.store)
    evidence = {"replay": "banknote, shuffled seed 0, prequential",
                "rows": int(len(y)),
                "candidate": {"run": best[0].id, "acc": best[1]},
                "runner_up": {"run": other[0].id, "acc": other[1]}}
    gen = registry.promote("banknote", version, alias="champion",
                           reason=f"{best[0].id[:8]} beat {other[0].id[:8]} "
                                  f"on the same replay "
                                  f"({best[1]:.4f} vs {other[1]:.4f})",
                           evidence=evidence, store=args.store)
    print(f"\nregistered banknote version {version}, promoted to champion "
          f"(generation {gen})\n")

    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    subprocess.run([sys.executable, "-m", "streamwise", "models", "history",
                    "banknote", "--store", args.store], env=env, check=True)
    print("\nthe C lookup the runner uses:")
    subprocess.run([os.path.join(ROOT, "build", "bin", "sw-serve"),
                    "--registry", args.store, "--resolve",
                    "banknote@champion"], check=True)
    py = registry.resolve("banknote@champion", store=args.store)
    c = sw._sw.registry_resolve(args.store, "banknote@champion")
    assert tuple(c) == tuple(py)
    print(f"Python and C agree: version {py.version}, sha256 "
          f"{py.sha256[:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
