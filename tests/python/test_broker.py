"""The embedded broker (build/bin/sw-broker on librdkafka's mock cluster)
with real clients: confluent_kafka and kcat, and its fault injection."""
import subprocess
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient

import streamwise as sw
from streamwise.kafka import broker_program, local_broker


def produce(bootstrap, topic, values, partition=None, **conf):
    acked, failed = [], []

    def report(err, msg):
        (failed if err else acked).append(
            err if err else (msg.partition(), msg.offset(), msg.value()))

    p = ck.Producer({"bootstrap.servers": bootstrap,
                     "enable.idempotence": True, "linger.ms": 5, **conf})
    for v in values:
        kw = {} if partition is None else {"partition": partition}
        p.produce(topic, v, on_delivery=report, **kw)
        p.poll(0)
    left = p.flush(30)
    return acked, failed, left


def consume_all(bootstrap, topic, partitions):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "t",
                     "enable.auto.commit": False,
                     "enable.partition.eof": True})
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING)
              for p in range(partitions)])
    out, eof = [], set()
    deadline = time.time() + 30
    while len(eof) < partitions and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == ck.KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            raise AssertionError(m.error())
        out.append((m.partition(), m.offset(), m.value()))
    c.close()
    assert len(eof) == partitions, "replay did not reach every partition end"
    return out


def test_round_trip_with_confluent_kafka():
    with local_broker(partitions=3, topics=[("events", 3)]) as b:
        assert b.bootstrap.startswith("127.0.0.1:")
        values = [f"event-{i}".encode() for i in range(3000)]
        acked = []
        for part in range(3):           # the sticky partitioner may skip one
            a, failed, left = produce(b.bootstrap, "events",
                                      values[part::3], partition=part)
            assert not failed and left == 0
            acked += a
        assert len(acked) == 3000
        got = consume_all(b.bootstrap, "events", 3)
        assert sorted(got) == sorted(acked)
        assert {p for p, _, _ in got} == {0, 1, 2}


def test_faults_lose_and_duplicate_nothing():
    with local_broker(topics=[("f", 2)]) as b:
        # produce requests fail and the connection drops; the idempotent
        # producer retries without writing anything twice (one request in
        # flight: the mock does not check sequence numbers, docs/kafka.md)
        b.push_request_errors("Produce", 3, "NOT_LEADER_FOR_PARTITION")
        b.push_request_errors("Produce", 2, "_TRANSPORT")
        values = [f"v{i}".encode() for i in range(500)]
        acked, failed, left = produce(
            b.bootstrap, "f", values,
            **{"max.in.flight.requests.per.connection": 1})
        assert not failed and left == 0
        # the broker goes away for two seconds in the middle of a produce
        more = [f"w{i}".encode() for i in range(500)]
        p = ck.Producer({"bootstrap.servers": b.bootstrap,
                         "enable.idempotence": True,
                         "message.timeout.ms": 30000})
        done = []
        for i, v in enumerate(more):
            p.produce("f", v, on_delivery=lambda e, m: done.append(
                (e, m.value())))
            if i == 250:
                p.flush(10)
                b.set_down()
                time.sleep(2)
                b.set_up()
        assert p.flush(30) == 0
        assert all(e is None for e, _ in done) and len(done) == 500
        got = [v for _, _, v in consume_all(b.bootstrap, "f", 2)]
        assert sorted(got) == sorted(values + more)       # once each


def test_injected_errors_reach_the_client():
    with local_broker(topics=[("e", 1)]) as b:
        b.push_request_errors("Produce", 1, "MSG_SIZE_TOO_LARGE")
        acked, failed, left = produce(b.bootstrap, "e", [b"x"],
                                      **{"enable.idempotence": False})
        assert [e.name() for e in failed] == ["MSG_SIZE_TOO_LARGE"]
        acked, failed, left = produce(b.bootstrap, "e", [b"y"])
        assert not failed and [v for _, _, v in acked] == [b"y"]


def test_commands_report_errors():
    with local_broker() as b:
        with pytest.raises(sw.InvalidArgument, match="unknown request"):
            b.push_request_errors("Nonsense", 1, "_TRANSPORT")
        with pytest.raises(sw.InvalidArgument, match="unknown error"):
            b.push_request_errors("Fetch", 1, "NOT_AN_ERROR")
        with pytest.raises(sw.InvalidArgument, match="no broker 5"):
            b.set_down(5)
        b.create_topic("made", 5)
        md = AdminClient({"bootstrap.servers": b.bootstrap}) \
            .list_topics(timeout=10)
        assert len(md.topics["made"].partitions) == 5
    # closed: the process is gone
    assert b._proc.poll() is not None


def test_kcat_talks_to_it():
    with local_broker(topics=[("k", 1)]) as b:
        subprocess.run(["kcat", "-b", b.bootstrap, "-t", "k", "-P", "-p",
                        "0"], input=b"a\nb\nc\n", check=True, timeout=30)
        out = subprocess.run(["kcat", "-b", b.bootstrap, "-t", "k", "-C",
                              "-e", "-q", "-f", "%o:%s\n"],
                             capture_output=True, check=True, timeout=30)
        assert out.stdout.decode().split() == ["0:a", "1:b", "2:c"]


def test_broker_program_runs_until_stopped():
    proc = subprocess.Popen([broker_program(), "--topic", "x:2"],
                            stdout=subprocess.PIPE, text=True)
    try:
        addr = proc.stdout.readline().strip()
        assert addr.startswith("127.0.0.1:")
        time.sleep(0.3)
        assert proc.poll() is None
        md = AdminClient({"bootstrap.servers": addr}) \
            .list_topics(timeout=10)
        assert len(md.topics["x"].partitions) == 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
