"""The betting story, end to end on embedded defaults (`make demo` runs it).

A betting company streams transactions (player, game, stake, won) and
wants, for every transaction, the probability that the player takes a
bonus offer now. Here, all on this machine and with no Python in the
serving path:

1. transactions on a Kafka topic (the embedded broker, 4 partitions,
   keyed by player; a seeded generator: no download);
2. the notebook's work: replay the first part of the topic, compute
   features with a pipeline, train a GBDT classifier, save model and
   pipeline as one bundle, register it and promote it to champion
   (the embedded SQLite store);
3. the runner, `build/bin/sw-serve run`, started on `bonus@champion`:
   raw events in, predictions on a topic and in a file;
4. the rest of the day's transactions produced while it runs;
5. its predictions read back and shown equal, bit for bit, to the
   notebook's on the same events;
6. the runner killed with SIGKILL and restarted: the state is the one an
   uninterrupted run has (nothing counted twice), the file has every
   prediction exactly once, and the topic's repeats are byte-identical.

Run: PYTHONPATH=python /usr/bin/python3 experiments/betting.py [--events N]
[--out DIR]. Exits non-zero if any check fails.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import streamwise as sw  # noqa: E402
from streamwise import registry, serve  # noqa: E402

SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"player": "str", "game": "str", "stake": "float64",
                          "won": "int8", "bonus": "int8"}},
    "features": [
        {"name": "bets", "op": "count", "key": "player"},
        {"name": "stake_mean", "op": "mean", "key": "player",
         "field": "stake", "default": 0},
        {"name": "stake_1h", "op": "decayed_sum", "key": "player",
         "field": "stake", "half_life": "1h"},
        {"name": "win_rate", "op": "rate", "key": "player", "field": "won",
         "a": 1, "b": 1},
        {"name": "bets_10m", "op": "count", "key": "player",
         "window": {"tumbling": "10m"}},
        {"name": "since_last", "op": "time_since_last", "key": "player",
         "default": -1},
        {"name": "games", "op": "distinct", "key": "player",
         "field": "game"},
        {"name": "bonus_rate", "op": "rate", "key": "player",
         "field": "bonus", "a": 1, "b": 9},
        {"name": "stake", "op": "value", "field": "stake"},
        {"name": "player_game_bets", "op": "count",
         "key": ["player", "game"]},
    ],
    "watermark": {"out_of_orderness": "30s"},
}
GAMES = ["slots", "poker", "roulette", "football", "tennis", "blackjack"]
T0 = 1_735_000_000_000_000


def transactions(n, players=5000, seed=2024):
    """(keys, JSON values): players with their own stakes, luck and taste
    for bonuses; a bonus is taken more by unlucky high-stakes players (what
    their history shows), and after a lost bet (the event itself)."""
    rng = np.random.default_rng(seed)
    taste = rng.lognormal(2.5, 0.8, players)
    luck = rng.beta(4, 5, players)
    appetite = rng.normal(0, 1, players)
    pid = (rng.zipf(1.3, n) + rng.integers(0, players, n) // 3) % players
    ts = T0 + np.cumsum(rng.exponential(20_000, n)).astype(np.int64)
    stake = np.round(taste[pid] * rng.lognormal(0, 0.5, n), 2)
    won = (rng.random(n) < luck[pid]).astype(np.int8)
    game = rng.integers(0, len(GAMES), n)
    logit = -2.0 + 3.0 * (0.45 - luck[pid]) + 0.5 * np.log(taste[pid] / 12) \
        + 0.8 * appetite[pid] + 0.7 * (won == 0)
    bonus = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    keys = [f"p{p}" for p in pid]
    values = [json.dumps({"ts": int(ts[i]), "player": keys[i],
                          "game": GAMES[game[i]], "stake": float(stake[i]),
                          "won": int(won[i]), "bonus": int(bonus[i])},
                         separators=(",", ":")) for i in range(n)]
    return keys, values


def produce(bootstrap, topic, keys, values):
    """Through streamwise's own sink (idempotent, acknowledged)."""
    sink = sw.kafka.Sink(topic, bootstrap)
    for at in range(0, len(values), 50_000):
        sink.send(values[at:at + 50_000], keys=keys[at:at + 50_000])
    if sink.flush(60)["failed"]:
        raise SystemExit("could not write the transactions")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait(run, n, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if run.status()["predictions"] >= n:
                return
        except OSError:
            if not run.alive():
                raise SystemExit(f"the runner stopped: {run.kill()}")
        time.sleep(0.2)
    raise SystemExit(f"the runner made fewer than {n} predictions in "
                     f"{timeout} s")


def lines(path):
    out = {}
    with open(path, "rb") as f:
        for line in f:
            d = json.loads(line)
            key = (d["partition"], d["offset"])
            if key in out:
                raise SystemExit(f"{path}: {key} twice")
            out[key] = line.rstrip(b"\n")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=120_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "out",
                                                  "betting"))
    a = ap.parse_args(argv)
    n, n_train = a.events, a.events // 3
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    store = os.path.join(a.out, "store")
    keys, values = transactions(n)
    ok = True
    print(f"streamwise betting demo - {n:,} transactions, "
          f"{sw.build_info()}\n")
    with sw.kafka.local_broker(partitions=4) as broker:
        print(f"1. embedded broker at {broker.bootstrap}; topic 'bets' "
              f"(4 partitions, keyed by player)")
        broker.create_topic("bets", 4)
        broker.create_topic("bonus-scores", 16)
        produce(broker.bootstrap, "bets", keys[:n_train], values[:n_train])

        # 2. the notebook: replay, features, model, bundle, promote
        t = time.time()
        p = sw.Pipeline(SPEC, emission="arrival", partitions=4)
        outs, labels = [], []
        for b in sw.replay.kafka("bets", broker.bootstrap, schema=SPEC):
            for q in np.unique(b["partition"]):
                sel = b["partition"] == q
                o = p.push({k: v[sel] for k, v in b.items()},
                           partition=int(q))
                outs.append(o)
                labels.append(np.asarray(o.events["bonus"]))
        X = np.concatenate([serve.features(o, sparse=False) for o in outs])
        y = np.concatenate(labels)
        cut = int(0.8 * len(y))
        clf = sw.GBDTClassifier(n_estimators=120, learning_rate=0.1,
                                num_leaves=31)
        clf.fit(X[:cut], y[:cut])
        from sklearn.metrics import roc_auc_score
        auc = roc_auc_score(y[cut:], clf.predict_proba(X[cut:])[:, 1])
        path = os.path.join(a.out, "bonus.swm")
        clf.save(path, pipeline=p, sparse=False)
        v = registry.register(path, "bonus", store=store)
        registry.promote("bonus", v, reason="betting demo: first model",
                         evidence={"holdout_auc": auc}, store=store)
        print(f"2. notebook: {len(y):,} replayed transactions -> "
              f"{len(p.columns)} features -> GBDT ({clf.n_estimators} "
              f"trees), holdout AUC {auc:.4f}"
              f"; bundle registered as bonus v{v}, promoted to champion "
              f"({time.time() - t:.1f} s)")

        # 3. the runner on bonus@champion
        port = free_port()
        job = serve.Job(
            serve.kafka_source("bets", broker.bootstrap, group="bonus",
                               config={"session.timeout.ms": "6000",
                                       "heartbeat.interval.ms": "500"}),
            "bonus@champion", registry=store, key="player",
            sinks=[serve.kafka_sink("bonus-scores"),
                   serve.jsonl(os.path.join(a.out, "scores.jsonl"))],
            dead_letters=serve.jsonl(os.path.join(a.out, "dead.jsonl")),
            checkpoint={"dir": os.path.join(a.out, "ckpt"), "every_s": 1},
            metrics_port=port, log_every_s=0)
        job_path = job.save(os.path.join(a.out, "job.json"))
        run = job.start(job_path)
        print(f"3. build/bin/sw-serve run {os.path.relpath(job_path, ROOT)}"
              f"  (metrics on http://127.0.0.1:{port}/metrics)")
        wait(run, n_train)

        # 4. the rest of the day while it runs; 6. a crash half way
        half = n_train + (n - n_train) // 2
        produce(broker.bootstrap, "bets", keys[n_train:half],
                values[n_train:half])
        time.sleep(0.5)
        run.kill()
        print(f"4. {half - n_train:,} more transactions produced; runner "
              f"killed with SIGKILL mid-stream")
        run = job.start(job_path)
        produce(broker.bootstrap, "bets", keys[half:], values[half:])
        wait(run, n)
        status = run.status()
        metrics = run.metrics()
        err = run.stop()
        restored = [x for x in err.splitlines() if "restored" in x]
        print(f"   restarted: {restored[0].split(': ', 1)[1] if restored else 'no checkpoint'}")
        print(f"   {status['events_in']:,} events in, "
              f"{status['predictions']:,} predictions, "
              f"{status['dead_letters']} dead letters, "
              f"{int(metrics['sw_checkpoints_total'])} checkpoints since "
              f"the restart, last {metrics['sw_checkpoint_duration_seconds'] * 1e3:.1f} ms")

        # 5. the notebook's predictions for the same events
        nb = serve.score_stream(sw.learners.load(path),
                                sw.replay.kafka("bets", broker.bootstrap,
                                                schema=SPEC), key="player")
        live = lines(os.path.join(a.out, "scores.jsonl"))
        same = len(live) == len(nb) == n
        for row in nb.itertuples():
            d = json.loads(live.get((row.partition, row.offset), b"{}"))
            same &= d.get("prediction") == row.prediction and \
                np.float64(d["prediction"]).tobytes() == \
                np.float64(row.prediction).tobytes()
        ok &= same
        print(f"5. runner predictions == notebook predictions, bit for bit, "
              f"for all {len(nb):,} events: {'yes' if same else 'NO'}")

        # 6. nothing counted twice
        topic = {}
        for b in sw.replay.kafka("bonus-scores", broker.bootstrap):
            for val in b["value"]:
                d = json.loads(val)
                topic.setdefault((d["partition"], d["offset"]),
                                 []).append(bytes(val))
        repeats = sum(len(x) - 1 for x in topic.values())
        identical = all(len(set(x)) == 1 for x in topic.values())
        exact = {k: x[0] for k, x in topic.items()} == live
        ok &= identical and exact
        print(f"6. after the crash: scores.jsonl has each of the {len(live):,}"
              f" predictions once; the topic repeated {repeats:,} "
              f"(byte-identical: {'yes' if identical else 'NO'}, the same "
              f"set once repeats are dropped: {'yes' if exact else 'NO'})")
        counts = [json.loads(x)["key"] for x in live.values()]
        top = max(set(counts), key=counts.count)
        print(f"   the busiest player, {top}, has {counts.count(top)} "
              f"predictions for {keys.count(top)} transactions")
        ok &= counts.count(top) == keys.count(top)
        d = json.loads(next(iter(live.values())))
        print(f"   a prediction: {json.dumps(d)[:150]}...")
    print("\nall checks passed" if ok else "\nA CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
