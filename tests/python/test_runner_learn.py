"""Online learning in sw-serve run: a PA or SCW bundle learns the pairs of
its pipeline's label join, test then train, and gives what
streamwise.evaluate.prequential gives on the same order; its learned model
rides in the checkpoint, so SIGKILL and a restart learn no pair twice. On
the embedded broker, loopback only, bounded in time."""
import json
import os
import subprocess
import time

import numpy as np
import pytest

import streamwise as sw
from streamwise import datasets, serve

from test_runner_live import free_port, wait_for

SPEC = {
    "events": {"time": "ts", "time_unit": "ms",
               "fields": {"id": "str", "kind": "str", "x1": "float64",
                          "x2": "float64", "x3": "float64", "x4": "float64",
                          "label": "int8"}},
    "features": [{"name": f"x{i}", "op": "value", "field": f"x{i}"}
                 for i in range(1, 5)],
    "watermark": {"out_of_orderness": "0s"},
    "label_join": {"key": "id", "type": "kind", "prediction": "bet",
                   "outcome": "label", "within": "1m", "label": "label",
                   "unmatched": "drop"},
}
T0 = 1_700_000_000_000


@pytest.fixture(autouse=True)
def no_runner_left():
    yield
    serve._end_all()


def data():
    """Banknote (UCI) when the data directory has it, else a seeded stream
    of the same shape: (X, y, is_banknote)."""
    try:
        X, y = datasets.load_banknote(seed=3)
        return X, y, True
    except datasets.DataNotFound:
        rng = np.random.default_rng(3)
        X = rng.standard_normal((1372, 4)) * [2.8, 5.9, 4.3, 2.1]
        y = (X @ [-0.9, -0.5, -0.6, 0.1] + rng.normal(0, 1, 1372) > 0)
        return X, y.astype(np.int64), False


def messages(X, y):
    """Each bet, then at once its label: two events 1 ms apart."""
    out = []
    for i in range(len(y)):
        bet = {"ts": T0 + 2 * i, "id": f"b{i}", "kind": "bet",
               "label": 0}
        bet.update({f"x{j + 1}": float(X[i, j]) for j in range(4)})
        lab = {"ts": T0 + 2 * i + 1, "id": f"b{i}", "kind": "label",
               "label": int(y[i])}
        lab.update({f"x{j + 1}": 0.0 for j in range(4)})
        out += [json.dumps(bet), json.dumps(lab)]
    return out


def bundle(path, cls, X, y):
    """A model that knows both classes (from 10 examples), saved with the
    label join pipeline."""
    p = sw.Pipeline(SPEC, emission="watermark")
    m = cls().partial_fit(X[:10], y[:10], classes=[0, 1])
    m.save(path, pipeline=p)
    return m


def reenact(model, X, y):
    """What the runner must do, in Python: for each bet, its decision value
    with everything before it learned, then learn it."""
    out = []
    for i in range(len(y)):
        out.append(model.decision_function(X[i:i + 1])[0])
        model.partial_fit(X[i:i + 1], y[i:i + 1])
    return np.array(out)


def send(bootstrap, msgs, feedback):
    """Bets and labels to "bets", or with feedback the labels to a topic
    of their own, "labels"."""
    if not feedback:
        with sw.kafka.Sink("bets", bootstrap) as s:
            s.send(msgs, partition=0)
        return
    for topic, part in (("bets", msgs[0::2]), ("labels", msgs[1::2])):
        with sw.kafka.Sink(topic, bootstrap) as s:
            s.send(part, partition=0)


def run_to_end(tmp_path, X, y, bundle_ref, feedback=False, **settings):
    """Each bet and its label on a topic of one partition of the embedded
    broker (with feedback the labels on a topic of their own), read to its
    end by sw-serve run (watermark emission, keyed by id, and the job
    settings given); the finished process."""
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("bets", 1)
        b.create_topic("labels", 1)
        send(b.bootstrap, messages(X, y), feedback)
        job = serve.Job(serve.kafka_source("bets", b.bootstrap), bundle_ref,
                        emission="watermark", key="id",
                        feedback="labels" if feedback else None, **settings)
        job.save(tmp_path / "job.json")
        r = subprocess.run([serve.runner_program(), "run",
                            str(tmp_path / "job.json")],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def refusal(tmp_path, job):
    """What sw-serve run says of a job it refuses (it must exit non-zero
    at once)."""
    job.save(tmp_path / "j.json")
    r = subprocess.run([serve.runner_program(), "run",
                        str(tmp_path / "j.json")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    return r.stderr


def bet_predictions(path, feedback=False):
    got = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            assert d["offset"] not in got, "an event scored twice"
            got[d["offset"]] = d["prediction"]
    if feedback:               # the labels' topic is read, never scored
        return np.array([got[o] for o in sorted(got)])
    # bets are the even offsets: each is followed by its label
    return np.array([got[o] for o in sorted(got) if o % 2 == 0])


@pytest.mark.parametrize("feedback", [False, True],
                         ids=["labels-with-events", "feedback-topic"])
@pytest.mark.parametrize("cls, floor", [
    (sw.PassiveAggressiveClassifier, 0.95), (sw.SCWClassifier, 0.97)])
def test_learning_in_the_runner_is_prequential(tmp_path, cls, floor,
                                               feedback):
    """With the labels on a topic of their own the pipeline's watermark
    holds the bets until the labels have caught up, so the same pairs are
    learned in the same order: the same bits as one topic."""
    X, y, banknote = data()
    model = bundle(str(tmp_path / "b.swm"), cls, X, y)
    out = tmp_path / "o.jsonl"
    run_to_end(tmp_path, X, y, str(tmp_path / "b.swm"), feedback, learn=True,
               sinks=[serve.jsonl(out)], metrics_port=free_port())
    live = bet_predictions(out, feedback)
    # the same decisions, bit for bit, as predict-then-learn in Python
    want = reenact(model, X, y)
    assert live.tobytes() == want.tobytes()
    # and the live accuracy is evaluate.prequential's on the same order
    fresh = cls().partial_fit(X[:10], y[:10], classes=[0, 1])
    acc = sw.evaluate.prequential(fresh, X, y)[-1]
    hits = (np.where(want > 0, 1, 0) == y).mean()
    assert hits == acc
    if banknote:
        assert acc >= floor


@pytest.mark.parametrize("feedback", [False, True],
                         ids=["labels-with-events", "feedback-topic"])
def test_sigkill_while_learning_learns_no_pair_twice(tmp_path, feedback):
    """With a feedback topic its offsets ride in the checkpoint beside the
    events': a restart reads neither again."""
    X, y, _ = data()
    X, y = np.tile(X, (3, 1)), np.tile(y, 3)
    model = bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    msgs = messages(X, y)
    out = tmp_path / "o.jsonl"
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("bets", 1)
        b.create_topic("labels", 1)
        port = free_port()
        job = serve.Job(serve.kafka_source(
                            "bets", b.bootstrap, group="learn",
                            config={"session.timeout.ms": "6000",
                                    "heartbeat.interval.ms": "500"}),
                        str(tmp_path / "b.swm"), emission="watermark",
                        key="id", learn=True, sinks=[serve.jsonl(out)],
                        checkpoint={"dir": str(tmp_path / "ckpt"),
                                    "every_events": 500},
                        metrics_port=port,
                        feedback="labels" if feedback else None)
        run = job.start(str(tmp_path / "job.json"))
        cut = [0, len(msgs) // 3, 2 * len(msgs) // 3, len(msgs)]
        for k in range(3):
            send(b.bootstrap, msgs[cut[k]:cut[k + 1]], feedback)
            if k < 2:
                # killed while it learns, then started again
                wait_for(lambda: _learned(run) > cut[k] // 2 + 50, 60,
                         "learning")
                run.kill()
                run = job.start(str(tmp_path / "job.json"))
        # the last bet waits for a later event to pass the watermark
        wait_for(lambda: _learned(run) >= len(y) - 1, 120, "every pair")
        metrics = run.metrics()
        run.stop()
    want = reenact(model, X, y)
    live = bet_predictions(out, feedback)
    assert len(live) == len(y)
    assert live.tobytes() == want.tobytes()
    # learned once each; with a topic of their own, the last label (1 ms
    # after the last bet) waits for the bets to move past it
    assert metrics["sw_learned_total"] == len(y) - (1 if feedback else 0)


def _learned(run):
    try:
        return run.metrics().get("sw_learned_total", 0)
    except OSError:
        return 0


def test_learning_needs_a_linear_model_a_join_and_the_watermark(tmp_path):
    X, y, _ = data()
    bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    no_join = dict(SPEC)
    del no_join["label_join"]
    p = sw.Pipeline(no_join, emission="watermark")
    sw.SCWClassifier().partial_fit(X[:10], y[:10], classes=[0, 1]).save(
        tmp_path / "nj.swm", pipeline=p)
    g = sw.GBDTClassifier(n_estimators=3).fit(X, y)
    g.save(tmp_path / "g.swm", pipeline=sw.Pipeline(SPEC,
                                                    emission="watermark"))
    src = serve.kafka_source("bets", "127.0.0.1:1", start="beginning",
                             stop="end")
    for path, emission, msg in [
            ("nj.swm", "watermark", "job: learn: the bundle's pipeline has "
                                    "no label_join"),
            ("g.swm", "watermark", "job: learn: g is not an online learner"),
            ("b.swm", "arrival", "emission: \"arrival\" does not go with "
                                 "label_join")]:
        said = refusal(tmp_path, serve.Job(src, str(tmp_path / path),
                                           emission=emission, learn=True))
        assert msg in said, said


def test_learned_snapshots_are_registered_with_their_lineage(tmp_path):
    from streamwise import registry
    X, y, _ = data()
    store = str(tmp_path / "store")
    model = bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    assert registry.register(str(tmp_path / "b.swm"), "notes",
                             store=store) == 1
    r = run_to_end(tmp_path, X, y, "notes@1", registry=store,
                   learn={"snapshot_every": 500},
                   sinks=[serve.jsonl(tmp_path / "o.jsonl")])
    assert "500 pairs learned, registered as notes@2" in r.stderr
    v = registry.versions("notes", store=store)
    assert list(v["version"]) == [1, 2, 3]
    lin = v["lineage"][2]
    assert lin["parent"]["version"] == 1
    assert lin["parent"]["sha256"] == v["sha256"][0]
    assert lin["learned_pairs"] == 1000
    # the outcomes learned since the first snapshot: labels 500..999, at
    # the odd offsets after each bet
    assert lin["outcomes"] == [{"partition": 0, "first_offset": 1001,
                                "last_offset": 1999}]
    # the registered snapshot is the model after 1000 pairs, to the bit
    reenact(model, X[:1000], y[:1000])
    snap = sw.learners.load(registry.resolve("notes@3", store=store).path)
    assert snap.decision_function(X).tobytes() == \
        model.decision_function(X).tobytes()


def test_a_feedback_topic_is_refused_where_it_cannot_work(tmp_path):
    X, y, _ = data()
    bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    src = serve.kafka_source("bets", "127.0.0.1:1", group="g")
    for settings, msg in [
            ({}, "job: feedback: expected \"learn\" or \"evaluate\" beside "
                 "it"),
            ({"learn": True, "feedback": {"topic": ""}},
             "job: feedback: expected the topic of the labels"),
            ({"evaluate": True, "tasks": True, "key": "id",
              "checkpoint": str(tmp_path / "c")},
             "job: feedback: expected no tasks or exactly_once beside it")]:
        settings.setdefault("feedback", "labels")
        said = refusal(tmp_path, serve.Job(src, str(tmp_path / "b.swm"),
                                           emission="watermark", **settings))
        assert msg in said, said


@pytest.mark.parametrize("every_s", [3600, 0.001])
def test_learned_snapshots_by_time_and_at_a_clean_stop(tmp_path, every_s):
    """learn.snapshot_every_s registers the learned model every so many
    seconds (between batches) and once more at a clean stop: the last
    version is the model after every pair, to the bit."""
    from streamwise import registry
    X, y, _ = data()
    store = str(tmp_path / "store")
    model = bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    registry.register(str(tmp_path / "b.swm"), "notes", store=store)
    run_to_end(tmp_path, X, y, "notes@1", registry=store, batch=300,
               learn={"snapshot_every_s": every_s},
               sinks=[serve.jsonl(tmp_path / "o.jsonl")])
    v = registry.versions("notes", store=store)
    learned = [lin["learned_pairs"] for lin in v["lineage"][1:]]
    if every_s == 3600:
        assert learned == [len(y)]             # at the stop only
    else:
        assert len(learned) >= 2 and learned[-1] == len(y)
        assert learned == sorted(set(learned))
    reenact(model, X, y)
    last = sw.learners.load(registry.resolve(
        f"notes@{int(v['version'].iloc[-1])}", store=store).path)
    assert last.decision_function(X).tobytes() == \
        model.decision_function(X).tobytes()
