"""sw-serve run: the notebook, a backtest and the live runner give the same
bytes; SIGKILL loses nothing and counts nothing twice; bad input gets a
clear error or a dead letter. Everything on the embedded broker, loopback
only, bounded in time."""
import base64
import json
import os
import random
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import streamwise as sw
from streamwise import serve

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "experiments"))
import betting  # noqa: E402  (the demo's producer and port finder)


SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "str", "item": "int64",
                          "price": "float64", "click": "int8"}},
    "features": [
        {"name": "user_n", "op": "count", "key": "user"},
        {"name": "user_price", "op": "mean", "key": "user", "field": "price",
         "default": 0},
        {"name": "user_ctr", "op": "rate", "key": "user", "field": "click",
         "a": 1, "b": 9},
        {"name": "user_spend_h", "op": "decayed_sum", "key": "user",
         "field": "price", "half_life": "1h"},
        {"name": "user_var", "op": "var", "key": "user", "field": "price",
         "default": 0},
        {"name": "user_items", "op": "distinct", "key": "user",
         "field": "item"},
        {"name": "user_n_1m", "op": "count", "key": "user",
         "window": {"tumbling": "1m"}},
        {"name": "user_z", "op": "standardize", "key": "user",
         "field": "price", "default": 0},
        {"name": "price", "op": "value", "field": "price"},
        {"name": "user_x_item", "op": "hash", "fields": ["user", "item"],
         "dims": 4096},
    ],
    "watermark": {"out_of_orderness": "30s"},
}
T0 = 1_700_000_000_000_000


def events(n, seed=0, users=300, jitter_us=0):
    """A seeded stream: (user keys, JSON values, arrays)."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * 30_000
    if jitter_us:
        ts = ts + rng.integers(0, jitter_us, n)
    user = rng.integers(0, users, n)
    item = rng.integers(0, 60, n)
    price = np.round(rng.gamma(2.0, 10.0, n), 2)
    click = (rng.random(n) < 0.15 + 0.1 * (user % 3 == 0)).astype(np.int8)
    values = [json.dumps({"ts": int(ts[i]), "user": f"u{user[i]}",
                          "item": int(item[i]), "price": float(price[i]),
                          "click": int(click[i])}, separators=(",", ":"))
              for i in range(n)]
    keys = [f"u{u}" for u in user]
    cols = {"ts": ts, "user": np.array(keys, dtype=object), "item": item,
            "price": price, "click": click}
    return keys, values, cols


def produce(bootstrap, topic, keys, values, extra=()):
    """The demo's producer (streamwise's own sink), then the extra
    (key, value) messages."""
    betting.produce(bootstrap, topic, keys, values)
    if extra:
        betting.produce(bootstrap, topic, [k for k, _ in extra],
                        [v for _, v in extra])


def train_bundle(path, kind="gbdt", n=6000, emission="arrival"):
    """Features and a model from replayed events, saved as a bundle."""
    _, _, cols = events(n, seed=99)
    p = sw.Pipeline(SPEC, emission=emission)
    out = p.push(cols)
    out2 = p.flush()
    assert len(out2) == 0 or emission == "watermark"
    y = cols["click"][out.index]
    if kind == "gbdt":
        m = sw.GBDTClassifier(n_estimators=25, num_leaves=15).fit(
            serve.features(out, sparse=False), y)
        m.save(path, pipeline=p, sparse=False)
    else:
        m = sw.SCWClassifier().fit(serve.features(out), y)
        m.save(path, pipeline=p)
    return path


free_port = betting.free_port


def wait_for(cond, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def predictions_done(run, n):
    def check():
        try:
            return run.status()["predictions"] >= n
        except OSError:
            return False
    return check


def lines_by_event(path):
    """{(partition, offset): line bytes} of a JSON-lines output."""
    out = {}
    with open(path, "rb") as f:
        for line in f:
            d = json.loads(line)
            key = (d["partition"], d["offset"])
            assert key not in out, f"{key} twice in {path}"
            out[key] = line.rstrip(b"\n")
    return out


def topic_values(bootstrap, topic):
    """Every message of a topic as (partition, offset) of the event -> list
    of value bytes, in the order written."""
    got = {}
    for b in sw.replay.kafka(topic, bootstrap):
        for v in b["value"]:
            d = json.loads(v)
            got.setdefault((d["partition"], d["offset"]), []).append(bytes(v))
    return got


@pytest.fixture(autouse=True)
def no_runner_left():
    """A failed test kills the runners it started."""
    yield
    serve._end_all()


@pytest.fixture(scope="module")
def broker():
    with sw.kafka.local_broker(partitions=4) as b:
        yield b


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundles")
    return {"gbdt": train_bundle(str(d / "gbdt.swm")),
            "scw": train_bundle(str(d / "scw.swm"), "scw"),
            "gbdt_wm": train_bundle(str(d / "gbdt_wm.swm"),
                                    emission="watermark")}


@pytest.mark.parametrize("kind, emission", [("gbdt", "arrival"),
                                            ("scw", "arrival"),
                                            ("gbdt", "watermark")])
def test_notebook_backtest_and_live_give_the_same_bytes(
        broker, bundles, tmp_path, kind, emission):
    topic = f"identity-{kind}-{emission}"
    broker.create_topic(topic, 4)
    keys, values, _ = events(12000, seed=7, jitter_us=20_000)
    produce(broker.bootstrap, topic, keys, values)
    bundle = bundles[kind]
    port = free_port()
    live_out = tmp_path / "live.jsonl"
    job = serve.Job(serve.kafka_source(topic, broker.bootstrap,
                                       group=f"g-{topic}"),
                    bundle, emission=emission, key="user",
                    sinks=[serve.jsonl(live_out)],
                    checkpoint={"dir": str(tmp_path / "ckpt"),
                                "every_s": 1},
                    metrics_port=port)
    run = job.start(str(tmp_path / "job.json"))
    try:
        # watermark emission holds the last 30 s of event time (about
        # 1000 events) back; arrival emits every event
        want = 12000 if emission == "arrival" else 10500
        wait_for(predictions_done(run, want), 60, "the live predictions")
        metrics = run.metrics()
        health = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/healthz", timeout=5).read()
    finally:
        run.stop()
    assert health == b"ok\n"
    assert metrics["sw_events_in_total"] == 12000
    assert metrics["sw_dead_letters_total"] == 0
    assert any(k.startswith("sw_batch_latency_seconds_bucket") for k in
               metrics)
    live = lines_by_event(live_out)
    # the backtest: the same job over the topic as a slice, to its end
    bt_out = tmp_path / "bt.jsonl"
    bt_job = serve.Job(serve.kafka_source(topic, broker.bootstrap),
                       bundle, emission=emission, key="user",
                       sinks=[serve.jsonl(bt_out),
                              serve.hdf5(tmp_path / "bt.h5")])
    bt_job.save(tmp_path / "bt.json")
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "bt.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    backtest = lines_by_event(bt_out)
    # the notebook: replay, the Python pipeline, the bundle's scoring
    nb = serve.score_stream(sw.learners.load(bundle),
                            sw.replay.kafka(topic, broker.bootstrap,
                                            schema=SPEC),
                            key="user", emission=emission)
    assert len(backtest) == len(nb) == 12000
    # live stopped before the watermark passed the last events
    assert set(live) <= set(backtest) and len(live) >= want
    for k, line in live.items():
        assert line == backtest[k]
    for row in nb.itertuples():
        d = json.loads(backtest[(row.partition, row.offset)])
        assert np.float64(d["prediction"]).tobytes() == \
            np.float64(row.prediction).tobytes()
        assert (d["key"], d["time_us"]) == (row.key, row.time_us)
    d = json.loads(next(iter(backtest.values())))
    assert d["model"] == os.path.basename(bundle)[:-4]
    assert len(d["sha256"]) == 64
    # the HDF5 sink: the same predictions as an event table sorted by time
    h5 = serve.read_predictions(tmp_path / "bt.h5")
    assert len(h5) == 12000
    assert (np.diff(h5["time_us"].to_numpy()) >= 0).all()
    for row in h5.itertuples():
        d = json.loads(backtest[(row.partition, row.offset)])
        assert np.float64(d["prediction"]).tobytes() == \
            np.float64(row.prediction).tobytes()
        assert (d["key"], d["time_us"], d["model"], d["sha256"]) == \
            (row.key, row.time_us, row.model, row.sha256)


def test_an_hdf5_sink_is_a_backtests_and_holds_single_numbers(
        broker, bundles, tmp_path):
    live = serve.Job(serve.kafka_source("x", broker.bootstrap, group="g"),
                     bundles["gbdt"], sinks=[serve.hdf5(tmp_path / "p.h5")])
    live.save(tmp_path / "live.json")
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "live.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "sinks[0].hdf5: expected a backtest's sink" in r.stderr, r.stderr
    dead = serve.Job(serve.kafka_source("x", broker.bootstrap, start=0,
                                        stop=1),
                     bundles["gbdt"], dead_letters=serve.hdf5(tmp_path / "d"))
    dead.save(tmp_path / "dead.json")
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "dead.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "dead_letters: expected a topic or a jsonl file" in r.stderr
    assert not os.path.exists(tmp_path / "p.h5")


def final_state(ckpt_dir, users):
    """The newest checkpoint's pipeline: its counters, and the feature
    rows one more event of every user an hour later gets from it (which
    reads every feature's state, whichever event was processed last)."""
    names = sorted(n for n in os.listdir(ckpt_dir) if n.endswith(".swc"))
    p, _ = sw.Pipeline.restore(os.path.join(ckpt_dir, names[-1]))
    st = p.stats
    counts = (st["emitted"], st["late"], st["invalid"], st["keys"])
    probe = p.push({"ts": np.full(len(users), T0 + 10**13, np.int64),
                    "user": np.array(users, dtype=object),
                    "item": np.arange(len(users)) % 60,
                    "price": np.ones(len(users)),
                    "click": np.zeros(len(users), np.int8)})
    assert len(probe) == len(users)
    return counts, probe.dense.tobytes()


def test_sigkill_five_times_loses_nothing_and_counts_nothing_twice(
        broker, bundles, tmp_path):
    n, chunks = 200_000, 6
    keys, values, _ = events(n, seed=3, users=2000)
    users = sorted(set(keys))
    cut = [n * i // chunks for i in range(chunks + 1)]

    def job(d, topic):
        return serve.Job(
            serve.kafka_source(topic, broker.bootstrap, group=topic,
                               config={"session.timeout.ms": "6000",
                                       "heartbeat.interval.ms": "500"}),
            bundles["gbdt"], key="user",
            sinks=[serve.kafka_sink(f"{topic}-preds"),
                   serve.jsonl(d / "out.jsonl")],
            checkpoint={"dir": str(d / "ckpt"), "every_events": 15000,
                        "every_s": 0.5, "background": True},
            metrics_port=free_port(), batch=2000, log_every_s=0)

    # the uninterrupted run, fed in the same chunks
    ref = tmp_path / "ref"
    ref.mkdir()
    broker.create_topic("ref", 4)
    broker.create_topic("ref-preds", 16)
    run = job(ref, "ref").start(str(ref / "job.json"))
    try:
        for i in range(chunks):
            produce(broker.bootstrap, "ref", keys[cut[i]:cut[i + 1]],
                    values[cut[i]:cut[i + 1]])
            wait_for(predictions_done(run, cut[i + 1]), 120,
                     f"{cut[i + 1]} predictions")
    finally:
        run.stop()
    want = lines_by_event(ref / "out.jsonl")
    assert len(want) == n
    want_state = final_state(ref / "ckpt", users)

    # the same, killed with SIGKILL five times: after each start a chunk
    # of events arrives and the runner is killed at a random moment of
    # its work, once while a checkpoint is being written
    crash = tmp_path / "crash"
    crash.mkdir()
    broker.create_topic("crash", 4)
    # the embedded broker keeps about 5 MiB a partition: spread the 45 MB
    # of predictions so that it keeps them all
    broker.create_topic("crash-preds", 16)
    rnd = random.Random(11)
    t_start = time.time()
    for i in range(chunks):
        run = job(crash, "crash").start(str(crash / "job.json"))
        wait_for(lambda: _up(run), 60, "the metrics endpoint")
        produce(broker.bootstrap, "crash", keys[cut[i]:cut[i + 1]],
                values[cut[i]:cut[i + 1]])
        if i == chunks - 1:
            break
        if i == 2:
            def writing():
                return any(".swc.tmp." in f
                           for f in os.listdir(crash / "ckpt"))
            t0 = time.time()
            while not writing():
                assert time.time() - t0 < 60, "no checkpoint being written"
        else:
            time.sleep(rnd.uniform(3.0, 6.0))
        run.kill()
        assert time.time() - t_start < 300
    try:
        wait_for(predictions_done(run, n), 120, "the run after five kills")
    finally:
        err = run.stop()
    assert "restored" in err
    got = lines_by_event(crash / "out.jsonl")    # a file is exactly once
    assert got == want
    assert final_state(crash / "ckpt", users) == want_state
    # the predictions topic is at least once: every duplicate is the same
    # bytes with the same (partition, offset), and after dropping them it
    # is the uninterrupted run's output
    topic_out = topic_values(broker.bootstrap, "crash-preds")
    dups = sum(len(v) - 1 for v in topic_out.values())
    assert all(len(set(v)) == 1 for v in topic_out.values())
    assert {k: v[0] for k, v in topic_out.items()} == want
    print(f"kills 5 (1 during a checkpoint write), duplicates on the topic "
          f"{dups}, events {n}")


def _up(run):
    try:
        run.status()
        return True
    except OSError:
        if not run.alive():
            raise AssertionError(run.kill())
        return False


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
        broker, bundles, tmp_path):
    topic = "fallback"
    broker.create_topic(topic, 2)
    keys, values, _ = events(9000, seed=5)
    produce(broker.bootstrap, topic, keys[:6000], values[:6000])
    job = serve.Job(serve.kafka_source(topic, broker.bootstrap, group="fb"),
                    bundles["gbdt"], key="user",
                    sinks=[serve.jsonl(tmp_path / "out.jsonl")],
                    checkpoint={"dir": str(tmp_path / "ckpt"),
                                "every_events": 1000, "background": False},
                    metrics_port=free_port(), batch=500)
    run = job.start(str(tmp_path / "job.json"))
    try:
        wait_for(predictions_done(run, 6000), 60, "6000 predictions")
    finally:
        run.stop()
    names = sorted(f for f in os.listdir(tmp_path / "ckpt"))
    assert len(names) == 3
    newest = tmp_path / "ckpt" / names[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x40
    newest.write_bytes(bytes(data))
    produce(broker.bootstrap, topic, keys[6000:], values[6000:])
    run = job.start(str(tmp_path / "job.json"))
    try:
        wait_for(predictions_done(run, 9000), 60, "9000 predictions")
    finally:
        err = run.stop()
    assert f"checkpoint {newest} is unusable" in err and "checksum" in err
    got = lines_by_event(tmp_path / "out.jsonl")
    assert len(got) == 9000
    nb = serve.score_stream(sw.learners.load(bundles["gbdt"]),
                            sw.replay.kafka(topic, broker.bootstrap,
                                            schema=SPEC), key="user")
    for row in nb.itertuples():
        d = json.loads(got[(row.partition, row.offset)])
        assert d["prediction"] == row.prediction


def test_bad_events_become_dead_letters_with_reason_field_and_bytes(
        broker, bundles, tmp_path):
    topic = "dirty"
    broker.create_topic(topic, 1)
    keys, values, _ = events(500, seed=8)
    bad = [("u1", b'{"ts": 1700000000000001, "user": "u1", "item": 3'),
           ("u2", b'[1, 2, 3]'),
           ("u3", json.dumps({"ts": T0 + 10, "user": "u3", "item": 1,
                              "click": 0}).encode()),
           ("u4", json.dumps({"ts": T0 + 20, "user": "u4", "item": "x",
                              "price": 2.5, "click": 0}).encode()),
           ("u5", b"\xff\xfe not text")]
    produce(broker.bootstrap, topic, keys, values, extra=bad)
    job = serve.Job(serve.kafka_source(topic, broker.bootstrap),
                    bundles["gbdt"], key="user",
                    sinks=[serve.jsonl(tmp_path / "out.jsonl")],
                    dead_letters=serve.jsonl(tmp_path / "dead.jsonl"))
    job.save(tmp_path / "job.json")
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "job.json")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    dead = [json.loads(x) for x in open(tmp_path / "dead.jsonl")]
    got = {(d["reason"], d["field"]) for d in dead}
    assert got == {("not_json", None), ("not_object", None),
                   ("missing", "price"), ("wrong_type", "item")}
    raw = {d["offset"]: base64.b64decode(d["raw_base64"]) for d in dead}
    assert raw[500] == bad[0][1] and raw[504] == bad[4][1]
    assert len(lines_by_event(tmp_path / "out.jsonl")) == 500


def test_broker_outage_ends_with_a_clear_error_naming_the_offsets(
        bundles, tmp_path):
    with sw.kafka.local_broker(partitions=2) as b:
        keys, values, _ = events(2000, seed=9)
        produce(b.bootstrap, "events", keys, values)
        job = serve.Job(serve.kafka_source("events", b.bootstrap,
                                           group="outage"),
                        bundles["gbdt"], key="user",
                        sinks=[serve.jsonl(tmp_path / "out.jsonl")],
                        checkpoint={"dir": str(tmp_path / "ckpt")},
                        metrics_port=free_port(), broker_outage_s=3)
        run = job.start(str(tmp_path / "job.json"))
        wait_for(predictions_done(run, 2000), 60, "2000 predictions")
        b.set_down()
        t0 = time.time()
        run.proc.wait(timeout=60)
        err = run.kill()
        assert run.proc.returncode == 1
        assert time.time() - t0 < 40
        assert "no broker reachable" in err and "last offsets read" in err
        assert "[SW_E_SOURCE]" in err


def test_job_and_bundle_mistakes_are_named(broker, bundles, tmp_path):
    def run(spec):
        path = tmp_path / "job.json"
        path.write_text(json.dumps(spec))
        return subprocess.run([serve.runner_program(), "run", str(path)],
                              capture_output=True, text=True, timeout=60)

    src = serve.kafka_source("dirty", broker.bootstrap)
    r = run({"source": src, "bundle": bundles["gbdt"], "sinkz": []})
    assert r.returncode == 2 and "job: job.sinkz: unknown key" in r.stderr
    r = run({"source": src, "bundle": bundles["gbdt"],
             "emission": "sometimes"})
    assert "emission: expected \"arrival\" or \"watermark\"" in r.stderr
    r = run({"source": src, "bundle": bundles["gbdt"], "key": "player"})
    assert "key 'player' is not a field" in r.stderr
    r = run({"source": src, "bundle": bundles["gbdt"],
             "sinks": [serve.kafka_sink("p", format="xml")]})
    assert "sinks[0].kafka.format: expected \"json\" or \"avro\"" in r.stderr
    r = run({"source": src, "bundle": bundles["gbdt"],
             "sinks": [serve.kafka_sink("p", schema_id=3)]})
    assert "sinks[0].kafka: expected no schema_id with JSON output" \
        in r.stderr, r.stderr
    r = run({"source": src, "bundle": bundles["gbdt"],
             "features": serve.kafka_sink("f", format="avro")})
    assert "features.kafka.format: expected \"json\"" in r.stderr
    # features keyed otherwise than the messages: said at start
    r = run({"source": src, "bundle": bundles["gbdt"], "key": "item"})
    assert r.returncode == 0, r.stderr
    assert "features user_n, user_price" in r.stderr
    assert "are not keyed by the message key 'item'" in r.stderr
    # a model without its pipeline cannot be served from raw events
    _, _, cols = events(300)
    plain = str(tmp_path / "plain.swm")
    sw.GBDTClassifier(n_estimators=3).fit(
        np.column_stack([cols["price"], cols["item"]]),
        cols["click"]).save(plain)
    r = run({"source": src, "bundle": plain})
    assert r.returncode == 1 and "without a pipeline" in r.stderr
    # a source whose events lack what the bundle's schema needs: every
    # event is a dead letter naming the field, nothing is scored
    broker.create_topic("other-schema", 1)
    produce(broker.bootstrap, "other-schema", ["a"] * 20,
            [json.dumps({"ts": T0 + i, "player": "a", "stake": 1.0})
             for i in range(20)])
    r = run({"source": serve.kafka_source("other-schema", broker.bootstrap),
             "bundle": bundles["gbdt"],
             "dead_letters": serve.jsonl(tmp_path / "d.jsonl"),
             "sinks": [serve.jsonl(tmp_path / "o.jsonl")]})
    assert r.returncode == 0, r.stderr
    dead = [json.loads(x) for x in open(tmp_path / "d.jsonl")]
    assert len(dead) == 20 and {d["field"] for d in dead} == {"user"}
    assert os.path.getsize(tmp_path / "o.jsonl") == 0


AVRO = {"type": "record", "name": "Event", "fields": [
    {"name": "ts", "type": "long"}, {"name": "user", "type": "string"},
    {"name": "item", "type": "long"}, {"name": "price", "type": "double"},
    {"name": "click", "type": "int"}]}


def test_avro_source_and_feature_logging(broker, bundles, tmp_path):
    """Confluent-framed Avro events give the predictions their JSON twins
    give; the features output holds the notebook's feature rows."""
    import io
    import struct

    avro = pytest.importorskip("avro.io")
    import avro.schema
    schema = avro.schema.parse(json.dumps(AVRO))
    keys, values, _ = events(3000, seed=12)
    broker.create_topic("av-json", 2)
    broker.create_topic("av-avro", 2)
    produce(broker.bootstrap, "av-json", keys, values)
    blobs = []
    for v in values:
        buf = io.BytesIO()
        buf.write(b"\0" + struct.pack(">i", 7))
        avro.io.DatumWriter(schema).write(json.loads(v),
                                          avro.io.BinaryEncoder(buf))
        blobs.append(buf.getvalue())
    produce(broker.bootstrap, "av-avro", keys, blobs)
    outs, logs = {}, {}
    for topic, extra, sink in (
            ("av-json", {}, serve.kafka_sink("av-json-p")),
            ("av-avro", {"avro": {"schema": AVRO, "writers": {"7": AVRO}}},
             serve.kafka_sink("av-avro-p", schema_id=8))):
        broker.create_topic(sink["kafka"]["topic"], 1)
        src = serve.kafka_source(topic, broker.bootstrap)
        src["kafka"].update(extra)
        job = serve.Job(src, bundles["scw"], key="user",
                        sinks=[serve.jsonl(tmp_path / f"{topic}.jsonl"), sink],
                        features=serve.jsonl(tmp_path / f"{topic}-f.jsonl"))
        job.save(tmp_path / f"{topic}.json")
        r = subprocess.run([serve.runner_program(), "run",
                            str(tmp_path / f"{topic}.json")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        outs[topic] = lines_by_event(tmp_path / f"{topic}.jsonl")
        logs[topic] = r.stderr
    # the same partitioner on the same keys: the same (partition, offset)
    assert len(outs["av-json"]) == 3000
    assert outs["av-json"] == outs["av-avro"]
    # a JSON source's topic gets JSON; an Avro source's gets Avro records
    # in Confluent's framing, read here by Apache's avro library with the
    # schema the runner logged: the JSON twins' values, bit for bit
    assert topic_values(broker.bootstrap, "av-json-p") == \
        {k: [v] for k, v in outs["av-json"].items()}
    line = [x for x in logs["av-avro"].splitlines() if "Avro" in x][0]
    assert "sinks[1] av-avro-p: Avro (Confluent framing), schema " in line
    out_schema = avro.schema.parse(line.split(" schema ", 1)[1])
    reader = avro.io.DatumReader(out_schema)
    n = 0
    for b in sw.replay.kafka("av-avro-p", broker.bootstrap):
        for k, v in zip(b["key"], b["value"]):
            v = bytes(v)
            assert v[:5] == b"\0" + struct.pack(">i", 8)
            body = io.BytesIO(v[5:])
            rec = reader.read(avro.io.BinaryDecoder(body))
            assert body.tell() == len(v) - 5        # nothing after it
            want = json.loads(outs["av-json"][(rec["partition"],
                                               rec["offset"])])
            assert rec.pop("tenant") is None and rec.pop("shadow") is None
            assert np.float64(rec.pop("prediction")).tobytes() == \
                np.float64(want.pop("prediction")).tobytes()
            assert rec == want and bytes(k) == want["key"].encode()
            n += 1
    assert n == 3000
    # feature rows: what the notebook's pipeline computes, bit for bit
    nb_p = sw.Pipeline(json.loads(sw.learners.load(bundles["scw"])
                                  ._fitted().pipeline[0]),
                       emission="arrival", partitions=2)
    by_event = {}
    for b in sw.replay.kafka("av-json", broker.bootstrap, schema=SPEC):
        for q in np.unique(b["partition"]):
            sel = b["partition"] == q
            o = nb_p.push({k: v[sel] for k, v in b.items()},
                          partition=int(q))
            for row, off, h in zip(o.dense, b["offset"][sel], o.hashed):
                by_event[(int(q), int(off))] = (row, h)
    n = 0
    for line in open(tmp_path / "av-json-f.jsonl"):
        d = json.loads(line)
        row, h = by_event[(d["partition"], d["offset"])]
        got = np.array([v if v is not None else np.nan
                        for v in d["features"].values()])
        assert list(d["features"]) == nb_p.columns
        assert got.tobytes() == row.tobytes()
        assert d["hashed"] == h.tolist()
        n += 1
    assert n == 3000


def test_secrets_come_from_the_environment(broker, bundles, tmp_path):
    src = serve.kafka_source("dirty", broker.bootstrap,
                             config={"sasl.password": "${SW_TEST_SECRET}"})
    job = serve.Job(src, bundles["gbdt"],
                    sinks=[serve.jsonl(tmp_path / "o.jsonl")])
    job.save(tmp_path / "j.json")
    env = {k: v for k, v in os.environ.items() if k != "SW_TEST_SECRET"}
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "j.json")], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 2
    assert "source.kafka.config.sasl.password: environment variable " \
           "SW_TEST_SECRET is not set" in r.stderr
    assert "${SW_TEST_SECRET}" in open(tmp_path / "j.json").read()
    env["SW_TEST_SECRET"] = "s3cret"
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "j.json")], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr   # PLAINTEXT ignores sasl.*
    assert "s3cret" not in r.stderr


@pytest.mark.skipif(not os.path.exists(os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "datasets",
    "talkingdata-adtracking-sample")) and not os.environ.get(
        "STREAMWISE_DATA"), reason="the TalkingData sample is not here "
    "(the seeded-generator identity test above always runs)")
def test_talkingdata_notebook_backtest_and_live_agree(broker, tmp_path):
    """The real click sample: clicks keyed by ip, features per ip and per
    (ip, app), a GBDT of downloads; three ways, the same bytes."""
    from streamwise import datasets
    spec = {"events": dict(datasets.convert.TALKINGDATA_SCHEMA),
            "features": [
                {"name": "ip_n", "op": "count", "key": "ip"},
                {"name": "ip_app_n", "op": "count", "key": ["ip", "app"]},
                {"name": "ip_apps", "op": "distinct", "key": "ip",
                 "field": "app"},
                {"name": "ip_gap", "op": "time_since_last", "key": "ip",
                 "default": -1},
                {"name": "ip_ch_n", "op": "count", "key": ["ip", "channel"]},
                {"name": "app", "op": "value", "field": "app"},
                {"name": "channel", "op": "value", "field": "channel"},
                {"name": "os", "op": "value", "field": "os"}],
            "watermark": {"out_of_orderness": "10m"}}
    h5 = tmp_path / "td.h5"
    datasets.talkingdata_to_hdf5(h5)
    broker.create_topic("td", 4)
    datasets.hdf5_to_topic(h5, "click", "td", broker.bootstrap, key="ip")
    p = sw.Pipeline(spec, emission="arrival")
    out = p.push(next(iter(sw.replay.hdf5(h5, "click", batch_size=30000))))
    g = sw.GBDTClassifier(n_estimators=30).fit(
        serve.features(out, sparse=False),
        np.asarray(out.events["is_attributed"]))
    bundle = str(tmp_path / "td.swm")
    g.save(bundle, pipeline=p, sparse=False)
    job = serve.Job(serve.kafka_source("td", broker.bootstrap, group="td"),
                    bundle, key="ip", sinks=[serve.jsonl(tmp_path / "l.jsonl")],
                    metrics_port=free_port())
    run = job.start(str(tmp_path / "job.json"))
    try:
        wait_for(predictions_done(run, 100_000), 120, "100,000 predictions")
    finally:
        run.stop()
    live = lines_by_event(tmp_path / "l.jsonl")
    bt = serve.Job(serve.kafka_source("td", broker.bootstrap), bundle,
                   key="ip").backtest()
    nb = serve.score_stream(sw.learners.load(bundle),
                            sw.replay.kafka("td", broker.bootstrap,
                                            schema=spec), key="ip")
    assert len(live) == len(bt) == len(nb) == 100_000
    for row in bt.itertuples():
        assert json.loads(live[(row.partition, row.offset)])["prediction"] \
            == row.prediction
    m = nb.merge(bt, on=["partition", "offset"])
    assert np.asarray(m.prediction_x, np.float64).tobytes() == \
        np.asarray(m.prediction_y, np.float64).tobytes()
