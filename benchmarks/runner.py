"""The runner's production loop against the loop a user would write in Python,
in the same run, on the embedded broker.

    PYTHONPATH=python /usr/bin/python3 benchmarks/runner.py [--events N]
        [--python-events M] [--reps R] [--skip-latency] [--skip-checkpoint]

Events: JSON {ts, user, item, price, click} on a topic of 4 partitions,
keyed by user (200,000 users, uniform). Pipeline: 10 aggregations keyed by
user (count, sum, mean, var, min, max, last, a decayed sum, a Beta rate,
a 1-minute tumbling count), the price itself and, for SCW, a hashed
user x item cross (2^18 buckets). Models: (a) SCW-I on the dense and
hashed features, (b) GBDT, 100 trees of 255 leaves, on the dense ones.

1. Throughput, one core each: `sw-serve run` (pinned to CPU 1) from the
   first event to the last prediction written to a predictions topic,
   alternating with the Python loop a user would otherwise write (pinned
   to CPU 1): a confluent_kafka consumer, json.loads, Pipeline.push per
   partition, the model's predict, a confluent_kafka producer. The broker
   and the event producer run on CPU 0. The embedded broker keeps about
   5 MiB a partition, so events are produced while they are consumed,
   never more than 120,000 ahead.
2. Latency in arrival mode at 20,000 events/s: from the moment the
   producer hands an event to librdkafka to the moment a consumer of the
   predictions topic holds its prediction; p50, p99, max. Both producers
   linger 1 ms (with 0 the embedded broker, sharing a core with the event
   producer, cannot take one request a message at this rate) and both
   consumers wait at most 1 ms for a fetch: four hops of up to a
   millisecond that are the broker's and the clients', not the runner's.
3. A checkpoint of 1,000,000 keys taken in the background: its duration
   and how long the event loop waited (outputs made durable, the fork).

Prints tables with the machine's load average; ratios are medians of the
alternating pairs with their range.
"""
import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import streamwise as sw  # noqa: E402
from streamwise import serve  # noqa: E402

USERS = 200_000
SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "str", "item": "int64", "price": "float64",
                          "click": "int8"}},
    "features": [
        {"name": "n", "op": "count", "key": "user"},
        {"name": "spend", "op": "sum", "key": "user", "field": "price"},
        {"name": "price_mean", "op": "mean", "key": "user", "field": "price",
         "default": 0},
        {"name": "price_var", "op": "var", "key": "user", "field": "price",
         "default": 0},
        {"name": "price_min", "op": "min", "key": "user", "field": "price",
         "default": 0},
        {"name": "price_max", "op": "max", "key": "user", "field": "price",
         "default": 0},
        {"name": "price_last", "op": "last", "key": "user", "field": "price",
         "default": 0},
        {"name": "clicks_1h", "op": "decayed_sum", "key": "user",
         "field": "click", "half_life": "1h"},
        {"name": "ctr", "op": "rate", "key": "user", "field": "click",
         "a": 1, "b": 20},
        {"name": "n_1m", "op": "count", "key": "user",
         "window": {"tumbling": "1m"}},
        {"name": "price", "op": "value", "field": "price"},
        {"name": "user_x_item", "op": "hash", "fields": ["user", "item"],
         "dims": 262144},
    ],
    "watermark": {"out_of_orderness": "10s"},
}
T0 = 1_735_000_000_000_000
QUIET = {"log_level": "3"}


def columns(n, seed, users=USERS, unique=False):
    rng = np.random.default_rng(seed)
    user = np.arange(n) if unique else rng.integers(0, users, n)
    price = np.round(rng.gamma(2.0, 10.0, n), 2)
    click = (rng.random(n) < 0.05 + 0.1 * (user % 7 == 0)).astype(np.int8)
    return {"ts": T0 + np.arange(n, dtype=np.int64) * 100, "user": user,
            "item": rng.integers(0, 5000, n), "price": price,
            "click": click}


def producer(bootstrap, topic, n, seed, consumed, max_ahead, rate, sendlog,
             unique):
    """Produce n events (CPU 0), never more than max_ahead beyond
    consumed.value; with rate, paced at rate events/s and every event's
    send time (CLOCK_MONOTONIC ns) logged against its partition and
    offset into sendlog."""
    import confluent_kafka
    os.sched_setaffinity(0, {0})
    c = columns(n, seed, unique=unique)
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 1 if rate else 5,
            "socket.nagle.disable": True,
            "batch.num.messages": 10000, **QUIET}
    p = confluent_kafka.Producer(conf)
    parts, offs, times = [], [], []

    def delivered(err, msg, t_sent=0):
        if err is None:
            parts.append(msg.partition())
            offs.append(msg.offset())
            times.append(t_sent)
    t_start = time.monotonic_ns()
    for i in range(n):
        while i - consumed.value > max_ahead:
            p.poll(0.002)
        if rate:
            # sleep to the event's due time (a busy wait would starve the
            # broker, which shares this core)
            due = t_start + int(i * 1e9 / rate)
            now = time.monotonic_ns()
            if due > now:
                p.poll(0)
                time.sleep((due - now) / 1e9)
        u = f"u{c['user'][i]}"
        v = (f'{{"ts":{c["ts"][i]},"user":"{u}","item":{c["item"][i]},'
             f'"price":{c["price"][i]},"click":{c["click"][i]}}}')
        while True:
            try:
                if rate:
                    t_sent = time.monotonic_ns()
                    p.produce(topic, key=u, value=v,
                              on_delivery=lambda e, m, t=t_sent:
                              delivered(e, m, t))
                else:
                    p.produce(topic, key=u, value=v)
                break
            except BufferError:
                p.poll(0.001)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)
    if rate:
        np.savez(sendlog, part=np.array(parts), off=np.array(offs),
                 t=np.array(times))


def clients(bootstrap, topic, group):
    """The Python loops' consumer (the 4 partitions from the start, with
    the fetch settings the runner's consumer uses, for a fair race) and
    producer."""
    import confluent_kafka
    cons = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group,
        "enable.auto.commit": False, "fetch.wait.max.ms": 10,
        "max.partition.fetch.bytes": 8388608, "fetch.max.bytes": 52428800,
        "queued.min.messages": 500000, **QUIET})
    cons.assign([confluent_kafka.TopicPartition(topic, q, 0)
                 for q in range(4)])
    prod = confluent_kafka.Producer({"bootstrap.servers": bootstrap,
                                     "linger.ms": 5, **QUIET})
    return cons, prod


def python_loop(bootstrap, topic, out_topic, bundle, n, consumed, result):
    """The loop a user writes without the runner (CPU 1)."""
    os.sched_setaffinity(0, {1})
    model = sw.learners.load(bundle)
    m = model._fitted()
    spec = json.loads(m.pipeline[0])
    p = sw.Pipeline(spec, emission="arrival", partitions=4)
    cons, prod = clients(bootstrap, topic, "py")
    done, t0 = 0, None
    while done < n:
        msgs = cons.consume(num_messages=5000, timeout=0.05)
        if not msgs:
            continue
        if t0 is None:
            t0 = time.perf_counter()
        by_part = {}
        for msg in msgs:
            if msg.error():
                continue
            by_part.setdefault(msg.partition(), []).append(msg)
        for q, ms in by_part.items():
            ev = [json.loads(x.value()) for x in ms]
            batch = {"ts": np.array([e["ts"] for e in ev], np.int64),
                     "user": np.array([e["user"] for e in ev], object),
                     "item": np.array([e["item"] for e in ev], np.int64),
                     "price": np.array([e["price"] for e in ev]),
                     "click": np.array([e["click"] for e in ev], np.int8)}
            out = p.push(batch, partition=q)
            scores = serve.score(m, p, out)
            for x, s in zip(ms, scores):
                v = json.dumps({"key": x.key().decode(),
                                "prediction": float(s),
                                "partition": q, "offset": x.offset()})
                while True:
                    try:
                        prod.produce(out_topic, key=x.key(), value=v)
                        break
                    except BufferError:
                        prod.poll(0.001)
            prod.poll(0)
            done += len(ms)
        consumed.value = done
    prod.flush(60)
    result.value = time.perf_counter() - t0
    cons.close()


def python_loop_per_event(bootstrap, topic, out_topic, bundle, n, consumed,
                          result):
    """The textbook loop, one message at a time (CPU 1): poll, json.loads,
    Pipeline.push of one event, predict, produce."""
    os.sched_setaffinity(0, {1})
    m = sw.learners.load(bundle)._fitted()
    p = sw.Pipeline(json.loads(m.pipeline[0]), emission="arrival",
                    partitions=4)
    cons, prod = clients(bootstrap, topic, "py1")
    done, t0 = 0, None
    while done < n:
        msg = cons.poll(0.05)
        if msg is None or msg.error():
            continue
        if t0 is None:
            t0 = time.perf_counter()
        e = json.loads(msg.value())
        out = p.push({"ts": [e["ts"]], "user": [e["user"]],
                      "item": [e["item"]], "price": [e["price"]],
                      "click": np.array([e["click"]], np.int8)},
                     partition=msg.partition())
        for s in serve.score(m, p, out):
            v = json.dumps({"key": e["user"], "prediction": float(s),
                            "partition": msg.partition(),
                            "offset": msg.offset()})
            while True:
                try:
                    prod.produce(out_topic, key=msg.key(), value=v)
                    break
                except BufferError:
                    prod.poll(0.001)
        prod.poll(0)
        done += 1
        if done % 1000 == 0:
            consumed.value = done
    consumed.value = done
    prod.flush(60)
    result.value = time.perf_counter() - t0
    cons.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_runner(job, work, name, cpu=1):
    path = job.save(os.path.join(work, f"{name}.json"))
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen(["taskset", "-c", str(cpu),
                             serve.runner_program(), "run", path],
                            stderr=log, stdout=subprocess.DEVNULL)
    return proc, log


def status(port):
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status",
                                    timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def metrics(port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=5) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out


def wait_ready(port, proc, timeout=60):
    t0 = time.time()
    while status(port) is None:
        if proc.poll() is not None or time.time() - t0 > timeout:
            raise SystemExit("the runner did not start")
        time.sleep(0.05)


def run_runner(broker, work, bundle, topic, n, seed, unique=False,
               checkpoint=None):
    """Events/s of sw-serve from its first event to its n-th prediction."""
    broker.create_topic(topic, 4)
    broker.create_topic(topic + "-out", 16)
    port = free_port()
    job = serve.Job(serve.kafka_source(topic, broker.bootstrap,
                                       group=topic,
                                       config={"fetch.wait.max.ms": "10"}),
                    bundle, key="user",
                    sinks=[serve.kafka_sink(topic + "-out")],
                    checkpoint=checkpoint, metrics_port=port,
                    log_every_s=0, wait_ms=10)
    proc, log = start_runner(job, work, topic)
    wait_ready(port, proc)
    consumed = mp.Value("q", 0)
    prod = mp.Process(target=producer, args=(broker.bootstrap, topic, n,
                                             seed, consumed, 120_000, None,
                                             None, unique))
    prod.start()
    t_first = None
    while True:
        st = status(port)
        if st is None:
            raise SystemExit(f"runner died: {open(log.name).read()}")
        consumed.value = st["events_in"]
        if t_first is None and st["events_in"] > 0:
            t_first = time.perf_counter() - 0.005   # half the poll period
        if st["predictions"] >= n:
            elapsed = time.perf_counter() - t_first
            break
        time.sleep(0.01)
    prod.join()
    while checkpoint and status(port)["checkpoints"] < 1:
        time.sleep(0.05)
    m = metrics(port)
    proc.terminate()
    proc.wait(60)
    log.close()
    return n / elapsed, m


def run_python(broker, work, bundle, topic, n, seed, per_event=False):
    broker.create_topic(topic, 4)
    broker.create_topic(topic + "-out", 16)
    consumed = mp.Value("q", 0)
    result = mp.Value("d", 0.0)
    loop = mp.Process(target=python_loop_per_event if per_event else
                      python_loop,
                      args=(broker.bootstrap, topic, topic + "-out", bundle,
                            n, consumed, result))
    loop.start()
    prod = mp.Process(target=producer, args=(broker.bootstrap, topic, n,
                                             seed, consumed, 120_000, None,
                                             None, False))
    prod.start()
    prod.join()
    loop.join()
    return n / result.value


def train(work):
    """The two bundles, trained on 200k replayed-like events."""
    c = columns(200_000, seed=1)
    c["user"] = np.array([f"u{u}" for u in c["user"]], dtype=object)
    p = sw.Pipeline(SPEC, emission="arrival")
    out = p.push(c)
    y = c["click"]
    scw = sw.SCWClassifier().fit(serve.features(out), y)
    scw_path = os.path.join(work, "scw.swm")
    scw.save(scw_path, pipeline=p)
    gbdt = sw.GBDTClassifier(n_estimators=100, num_leaves=255,
                             learning_rate=0.1)
    gbdt.fit(serve.features(out, sparse=False), y)
    g_path = os.path.join(work, "gbdt.swm")
    gbdt.save(g_path, pipeline=p, sparse=False)
    return {"SCW-I (dense + hashed)": scw_path,
            "GBDT 100 x 255 leaves": g_path}


def latency(broker, work, bundle, rate, seconds):
    """Produce-to-prediction latency in arrival mode at rate events/s."""
    import confluent_kafka
    n = int(rate * seconds)
    topic = "latency-" + os.path.basename(bundle)[:-4]
    broker.create_topic(topic, 4)
    # the embedded broker trims a partition past about 5 MiB, and trimming
    # while appending stalls it for seconds: 5 s of events (100,000) keep
    # the partitions under it
    broker.create_topic(topic + "-out", 4)
    port = free_port()
    job = serve.Job(
        serve.kafka_source(topic, broker.bootstrap, group=topic,
                           config={"fetch.wait.max.ms": "1"}),
        bundle, key="user", emission="arrival",
        sinks=[serve.kafka_sink(topic + "-out", config={"linger.ms": "1"})],
        metrics_port=port, log_every_s=0, wait_ms=1, batch=1000)
    proc, log = start_runner(job, work, topic)
    wait_ready(port, proc)
    cons = confluent_kafka.Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": "lat",
        "fetch.wait.max.ms": 1, **QUIET})
    cons.assign([confluent_kafka.TopicPartition(topic + "-out", q,
                                                confluent_kafka.OFFSET_END)
                 for q in range(4)])
    cons.consume(num_messages=1, timeout=1.0)
    # a first event through, so the runner has joined its group and holds
    # its partitions before the clock starts
    warm = mp.Value("q", 0)
    producer(broker.bootstrap, topic, 100, 4, warm, 10**9, None, None, False)
    t0 = time.time()
    while (status(port) or {}).get("predictions", 0) < 100:
        if time.time() - t0 > 60:
            raise SystemExit("latency: the runner did not start scoring")
        time.sleep(0.05)
    while cons.consume(num_messages=1000, timeout=0.2):
        pass
    consumed = mp.Value("q", 0)
    sendlog = os.path.join(work, "sent.npz")
    prod = mp.Process(target=producer, args=(broker.bootstrap, topic, n, 5,
                                             consumed, 10**9, rate, sendlog,
                                             False))
    prod.start()
    recv = {}
    t_end = time.time() + seconds + 30
    # poll() returns as soon as one message is there and sleeps in
    # librdkafka until then: a spinning reader would take the core the
    # broker and the producer share
    while len(recv) < n and time.time() < t_end:
        msg = cons.poll(0.05)
        if msg is None or msg.error():
            continue
        t = time.monotonic_ns()
        d = json.loads(msg.value())
        recv[(d["partition"], d["offset"])] = t
    prod.join()
    m = metrics(port)
    proc.terminate()
    proc.wait(60)
    log.close()
    cons.close()
    # the runner's own share: from a batch in hand to its predictions
    # handed to the producer (its histogram, cumulative counts by bound)
    bounds = [(float(k.split('le="')[1].split('"')[0]), v)
              for k, v in m.items()
              if k.startswith("sw_batch_latency_seconds_bucket")
              and "+Inf" not in k]
    total = m["sw_batch_latency_seconds_count"]
    own = {q: next((b * 1e3 for b, c in bounds if c >= q * total),
                   float("inf")) for q in (0.5, 0.99)}
    s = np.load(sendlog)
    lat = np.array([recv[(int(q), int(o))] - t for q, o, t in
                    zip(s["part"], s["off"], s["t"])
                    if (int(q), int(o)) in recv]) / 1e6
    return lat, n, own


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--python-events", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-checkpoint", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--rate", type=int, default=20_000,
                    help="events/s of the latency run")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sw-bench-runner-")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"streamwise {sw.build_info()}")
    print(f"load average at start: {os.getloadavg()}")
    t = time.time()
    bundles = train(work)
    print(f"bundles trained in {time.time() - t:.1f} s\n")
    os.sched_setaffinity(0, {0})
    if not a.skip_throughput:
        with sw.kafka.local_broker(partitions=4) as broker:
            os.sched_setaffinity(broker._proc.pid, {0})
            rows = []
            for name, bundle in bundles.items():
                pairs = []
                for r in range(a.reps):
                    tag = f"{'scw' if 'SCW' in name else 'gbdt'}{r}"
                    rs, _ = run_runner(broker, work, bundle, f"r-{tag}",
                                       a.events, seed=10 + r)
                    py = run_python(broker, work, bundle, f"p-{tag}",
                                    a.python_events, seed=20 + r)
                    py1 = run_python(broker, work, bundle, f"q-{tag}",
                                     a.python_events // 5, seed=40 + r,
                                     per_event=True)
                    pairs.append((rs, py, py1))
                    print(f"  {name} round {r + 1}: sw-serve {rs:,.0f} ev/s, "
                          f"Python loop (batches) {py:,.0f} ev/s, Python loop "
                          f"(per message) {py1:,.0f} ev/s", flush=True)
                rows.append((name, [x for x, _, _ in pairs],
                             [y for _, y, _ in pairs], [z for _, _, z in pairs]))
            print(f"\nThroughput, one core each, {a.events:,} events (Python "
                  f"loops {a.python_events:,} in batches, "
                  f"{a.python_events // 5:,} per message), load average "
                  f"{os.getloadavg()}")
            print("| model | sw-serve ev/s (median, range) | Python loop, "
                  "batches of 5,000 | ratio | Python loop, per message | "
                  "ratio |")
            print("|---|---|---|---|---|---|")

            def cell(xs):
                return (f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-"
                        f"{max(xs):,.0f})")

            def ratio(num, den):
                r = [x / y for x, y in zip(num, den)]
                return (f"{statistics.median(r):.1f}x ({min(r):.1f}-"
                        f"{max(r):.1f})")
            for name, rs, py, py1 in rows:
                print(f"| {name} | {cell(rs)} | {cell(py)} | {ratio(rs, py)} | "
                      f"{cell(py1)} | {ratio(rs, py1)} |")
    if not a.skip_latency:
        for name, bundle in bundles.items():
            # a broker of its own: the throughput runs leave it holding
            # (and trimming) gigabytes of old topics
            with sw.kafka.local_broker(partitions=4) as broker:
                os.sched_setaffinity(broker._proc.pid, {0})
                lat, n, own = latency(broker, work, bundle, a.rate, 5)
                print(f"\nLatency, arrival mode, {a.rate:,} events/s for 5 s, "
                      f"{name}: {len(lat):,} of {n:,} measured; "
                      f"p50 {np.percentile(lat, 50):.2f} ms, "
                      f"p99 {np.percentile(lat, 99):.2f} ms, "
                      f"max {lat.max():.2f} ms "
                      f"(load average {os.getloadavg()[0]:.2f}); the "
                      f"runner's own batch time: p50 <= {own[0.5]:g} ms, "
                      f"p99 <= {own[0.99]:g} ms")
    if not a.skip_checkpoint:
        with sw.kafka.local_broker(partitions=4) as broker:
            os.sched_setaffinity(broker._proc.pid, {0})
            ck = os.path.join(work, "ckpt")
            rate, m = run_runner(
                broker, work, bundles["SCW-I (dense + hashed)"], "ckpt",
                1_000_000, seed=30, unique=True,
                checkpoint={"dir": ck, "every_events": 1_000_000,
                            "every_s": 0, "background": True})
            print(f"\nCheckpoint of {int(m['sw_keys']):,} keys in the "
                  f"background: {m['sw_checkpoint_duration_seconds']:.3f} s "
                  f"to write ({m['sw_checkpoint_bytes'] / 2**20:.0f} MiB), "
                  f"the event loop waited "
                  f"{m['sw_checkpoint_stall_seconds'] * 1e3:.1f} ms "
                  f"(outputs durable + fork); {rate:,.0f} ev/s with 1M new "
                  f"keys")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
