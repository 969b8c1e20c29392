"""exactly_once: every Kafka output and the group's offsets in one Kafka
transaction per checkpoint. On the embedded broker (librdkafka 2.0.2's
mock cluster) the transactional protocol runs for real (InitProducerId,
AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), but the
mock hides no aborted message from read_committed readers, stores no
offset committed in a transaction and fences no older producer: those
three are a real cluster's part and are not shown here (docs/runner.md).
What is shown: the same bytes as without transactions, a transaction per
checkpoint, and the choice of checkpoint after a crash between a
checkpoint and its transaction's commit."""
import json
import os

import pytest

import streamwise as sw
from streamwise import serve

from test_runner_live import (SPEC, events, final_state, free_port,  # noqa
                              lines_by_event, no_runner_left, predictions_done,
                              produce, topic_values, train_bundle, wait_for)


@pytest.fixture(scope="module")
def broker():
    with sw.kafka.local_broker(partitions=4) as b:
        yield b


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return train_bundle(str(tmp_path_factory.mktemp("eos") / "gbdt.swm"))


def job(broker, bundle, d, topic, **kw):
    return serve.Job(
        # a killed member leaves the group after 6 s, not librdkafka's 45
        serve.kafka_source(topic, broker.bootstrap, group=topic,
                           config={"session.timeout.ms": "6000",
                                   "heartbeat.interval.ms": "500"}),
        bundle, key="user",
        sinks=[serve.kafka_sink(f"{topic}-preds"), serve.jsonl(d / "out.jsonl")],
        dead_letters=serve.kafka_sink(f"{topic}-dead"),
        checkpoint={"dir": str(d / "ckpt"), "every_events": 2000},
        metrics_port=free_port(), batch=500, log_every_s=0,
        exactly_once=True, **kw)


def test_exactly_once_writes_the_notebooks_bytes_in_a_transaction_per_checkpoint(
        broker, bundle, tmp_path):
    topic = "eos"
    broker.create_topic(topic, 4)
    broker.create_topic(f"{topic}-preds", 4)
    broker.create_topic(f"{topic}-dead", 1)
    keys, values, _ = events(12000, seed=21)
    produce(broker.bootstrap, topic, keys, values,
            extra=[("u1", "{not json")])
    run = job(broker, bundle, tmp_path, topic).start(str(tmp_path / "j.json"))
    try:
        wait_for(predictions_done(run, 12000), 60, "12000 predictions")
        m = run.metrics()
    finally:
        err = run.stop()
    assert f"transactional.id 'streamwise-{topic}'" in err
    st_tx = m["sw_transactions_total"]
    assert st_tx >= 5, m      # every_events 2000 over 12000 events
    # the file and the topic hold the notebook's predictions, once each
    got = lines_by_event(tmp_path / "out.jsonl")
    on_topic = topic_values(broker.bootstrap, f"{topic}-preds")
    assert all(len(v) == 1 for v in on_topic.values())
    assert {k: v[0] for k, v in on_topic.items()} == got
    nb = serve.score_stream(sw.learners.load(bundle),
                            sw.replay.kafka(topic, broker.bootstrap,
                                            schema=SPEC), key="user")
    assert len(nb) == len(got) == 12000
    for row in nb.itertuples():
        assert json.loads(got[(row.partition, row.offset)])["prediction"] \
            == row.prediction
    # the dead letter went through the same transaction
    dead = [(bytes(k), bytes(v))
            for b in sw.replay.kafka(f"{topic}-dead", broker.bootstrap)
            for k, v in zip(b["key"], b["value"])]
    assert dead == [(b"not_json", b"{not json")]
    # the committed checkpoint is the newest
    ck = tmp_path / "ckpt"
    newest = max(int(n[5:17]) for n in os.listdir(ck) if n.endswith(".swc"))
    assert int((ck / "committed").read_text()) == newest


def test_a_crash_between_a_checkpoint_and_its_commit_restores_the_one_before(
        broker, bundle, tmp_path, monkeypatch):
    """The checkpoint is on disk, the transaction of its outputs is not
    committed: a restart must not take it (its outputs were aborted), but
    the one before, and score the events after that again."""
    n = 10000
    keys, values, _ = events(n, seed=22, users=500)
    users = sorted(set(keys))

    ref = tmp_path / "ref"
    ref.mkdir()
    for t in ("eref", "eref-preds", "eref-dead"):
        broker.create_topic(t, 4 if t != "eref-dead" else 1)
    produce(broker.bootstrap, "eref", keys, values)
    run = job(broker, bundle, ref, "eref").start(str(ref / "j.json"))
    try:
        wait_for(predictions_done(run, n), 60, f"{n} predictions")
    finally:
        run.stop()
    want = lines_by_event(ref / "out.jsonl")

    d = tmp_path / "crash"
    d.mkdir()
    for t in ("ecr", "ecr-preds", "ecr-dead"):
        broker.create_topic(t, 4 if t != "ecr-dead" else 1)
    produce(broker.bootstrap, "ecr", keys, values)
    monkeypatch.setenv("STREAMWISE_FAULT", "kill_before_commit:3")
    run = job(broker, bundle, d, "ecr").start(str(d / "j.json"))
    wait_for(lambda: not run.alive(), 60, "the runner to die at its 3rd commit")
    assert run.proc.returncode == -9
    monkeypatch.delenv("STREAMWISE_FAULT")
    ck = d / "ckpt"
    committed = int((ck / "committed").read_text())
    newest = max(int(f[5:17]) for f in os.listdir(ck) if f.endswith(".swc"))
    assert newest == committed + 1     # written, its transaction not committed

    run = job(broker, bundle, d, "ecr").start(str(d / "j.json"))
    try:
        wait_for(predictions_done(run, n), 60, f"{n} predictions after it")
    finally:
        err = run.stop()
    assert "transaction did not commit" in err, err
    assert f"ckpt-{newest:012d}.swc.aborted" in os.listdir(ck)
    assert f"restored {ck}/ckpt-{committed:012d}.swc" in err, err
    # state and file exactly once, equal to the uninterrupted run's
    assert lines_by_event(d / "out.jsonl") == want
    assert final_state(ck, users) == final_state(ref / "ckpt", users)
    # the mock shows the aborted transaction's messages too: each is the
    # same bytes as its re-emission (a real cluster hides it from
    # read_committed readers)
    on_topic = topic_values(broker.bootstrap, "ecr-preds")
    assert all(len(set(v)) == 1 for v in on_topic.values())
    assert {k: v[0] for k, v in on_topic.items()} == want


@pytest.mark.parametrize("change, message", [
    ({"checkpoint": None}, "a checkpoint.dir"),
    ({"checkpoint": {"dir": "x", "keep": 1}}, "checkpoint.keep"),
    ({"checkpoint": {"dir": "x", "every_s": 0, "every_events": 100}},
     "checkpoint.every_s: expected 0 < seconds < 50"),
    ({"exactly_once": {"transactional_id": ""}}, "transactional_id"),
    ({"exactly_once": "yes"}, "true, false or"),
    ({"sinks": [{"kafka": {"topic": "p", "bootstrap": "other:9092"}}]},
     "on the source's cluster"),
])
def test_exactly_once_mistakes_are_named(broker, bundle, tmp_path, change,
                                         message):
    j = job(broker, bundle, tmp_path, "mistakes")
    j.spec.update(change)
    if "sinks" in change:
        j.spec["dead_letters"] = None
    run = j.start(str(tmp_path / "j.json"))
    run.proc.wait(timeout=30)
    err = run._messages()
    assert run.proc.returncode == 2, err
    assert message in err, err

