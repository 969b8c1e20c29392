"""Replaying a Kafka topic through the C core's source, against the
embedded broker: exact ranges, timestamps, outages, bad arguments."""
import time

import confluent_kafka as ck
import numpy as np
import pytest

import streamwise as sw
from streamwise.kafka import local_broker

T0 = 1_700_000_000_000       # ms


def publish(bootstrap, topic, n, parts):
    """Message i goes to partition i % parts with key k<i>, value v<i> and
    timestamp T0 + 10 * i (rising in every partition)."""
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                     "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), key=f"k{i}".encode(),
                  partition=i % parts, timestamp=T0 + 10 * i)
    assert p.flush(30) == 0


def collect(replay):
    batches = list(replay)
    return {k: np.concatenate([b[k] for b in batches]) for k in
            ("partition", "offset", "timestamp", "key", "value")}


@pytest.fixture(scope="module")
def broker():
    with local_broker(topics=[("t", 3)]) as b:
        publish(b.bootstrap, "t", 6000, 3)
        yield b


def test_whole_topic_once_each(broker):
    r = sw.replay.kafka("t", bootstrap=broker.bootstrap, batch_size=700)
    got = collect(r)
    i = np.array([int(v[1:]) for v in got["value"]])
    assert sorted(i.tolist()) == list(range(6000))
    assert (got["partition"] == i % 3).all()
    assert (got["offset"] == i // 3).all()
    assert (got["timestamp"] == T0 + 10 * i).all()
    assert [k.decode() for k in got["key"]] == [f"k{j}" for j in i]
    s = r.slice
    assert s["complete"] and s["messages"] == 6000
    assert [(p["start"], p["stop"]) for p in s["partitions"]] == [(0, 2000)] * 3


def test_from_a_time_returns_exactly_the_later_messages(broker):
    cut = T0 + 10 * 3001 + 5          # between messages 3001 and 3002
    for start in (np.datetime64(cut, "ms"),
                  __import__("pandas").Timestamp(cut, unit="ms")):
        got = collect(sw.replay.kafka("t", bootstrap=broker.bootstrap,
                                      start=start))
        want = [i for i in range(6000) if T0 + 10 * i >= cut]
        assert sorted(int(v[1:]) for v in got["value"]) == want


def test_offsets_times_and_partitions(broker):
    r = sw.replay.kafka("t", bootstrap=broker.bootstrap, start=100,
                        stop=np.datetime64(T0 + 10 * 1500, "ms"),
                        partitions=[2])
    got = collect(r)
    # partition 2 holds messages 2, 5, 8, ...: offsets 100.. up to the
    # first message at or after message 1500's time (1502, offset 500)
    assert got["offset"].tolist() == list(range(100, 500))
    assert (got["partition"] == 2).all()
    assert r.slice["partitions"] == [{"partition": 2, "start": 100,
                                      "stop": 500, "next": 500,
                                      "messages": 400}]


def test_an_outage_loses_and_duplicates_nothing(broker):
    r = sw.replay.kafka("t", bootstrap=broker.bootstrap, batch_size=500,
                        timeout=20)
    seen = [next(r)]
    broker.set_down()
    time.sleep(2)
    broker.set_up()
    seen += list(r)
    vals = np.concatenate([b["value"] for b in seen])
    assert sorted(int(v[1:]) for v in vals) == list(range(6000))


def test_a_broker_that_stays_away_is_an_error_naming_offsets():
    with local_broker(topics=[("d", 1)]) as b:
        publish(b.bootstrap, "d", 30000, 1)
        # a small client queue, so that the rest is not already fetched
        r = sw.replay.kafka("d", bootstrap=b.bootstrap, batch_size=1000,
                            timeout=3,
                            config={"queued.max.messages.kbytes": 1})
        first = next(r)
        b.set_down()
        with pytest.raises(sw.IOError, match=r"no progress for 3000 ms "
                           r"\(last offsets read: 0=\d+\)"):
            list(r)
        assert len(first["offset"]) == 1000


def test_bad_arguments(broker):
    with pytest.raises(sw.InvalidArgument, match="no partition 7"):
        sw.replay.kafka("t", bootstrap=broker.bootstrap, partitions=[7])
    with pytest.raises(sw.InvalidArgument, match="start takes"):
        sw.replay.kafka("t", bootstrap=broker.bootstrap, start="end")
    with pytest.raises(sw.InvalidArgument, match="not an offset or a time"):
        sw.replay.kafka("t", bootstrap=broker.bootstrap, start="yesterday")
    with pytest.raises(sw.InvalidArgument, match="config no.such.thing"):
        sw.replay.kafka("t", bootstrap=broker.bootstrap,
                        config={"no.such.thing": 1})
    with pytest.raises(sw.InvalidArgument, match="no bootstrap"):
        sw.replay.kafka("t", bootstrap="")


SPEC = {"events": {"time": "ts", "time_unit": "ms",
                   "fields": {"user": "str", "amount": "float64",
                              "n": "int32", "promo": "bool"},
                   "defaults": {"promo": False}},
        "features": [{"name": "spent", "op": "sum", "key": "user",
                      "field": "amount"},
                     {"name": "visits", "op": "count", "key": "user"}]}


def test_json_events_decode_into_pipeline_columns():
    import json
    rng = np.random.default_rng(0)
    good = []
    with local_broker(topics=[("ev", 2)]) as b:
        p = ck.Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        bad_at = {}
        for i in range(4000):
            e = {"ts": T0 + i, "user": f"u{rng.integers(50)}",
                 "amount": float(np.round(rng.gamma(2, 5), 2)),
                 "n": int(rng.integers(100))}
            if i % 3:
                e["promo"] = bool(i % 2)    # older events lack it
            value = json.dumps(e).encode()
            if i % 500 == 7:                # four kinds of garbage
                kind = (i // 500) % 4
                value = [b"{not json", b"[1, 2]",
                         json.dumps({"ts": T0 + i}).encode(),
                         json.dumps({**e, "n": "many"}).encode()][kind]
                bad_at[i] = ["not_json", "not_object", "missing",
                             "wrong_type"][kind]
            else:
                good.append(e)
            p.produce("ev", value, partition=0, timestamp=T0 + i)
        assert p.flush(30) == 0
        r = sw.replay.kafka("ev", bootstrap=b.bootstrap, schema=SPEC,
                            batch_size=999)
        batches = list(r)
    cols = {k: np.concatenate([x[k] for x in batches]) for k in batches[0]}
    assert cols["ts"].tolist() == [e["ts"] for e in good]
    assert cols["user"].tolist() == [e["user"] for e in good]
    assert cols["amount"].tolist() == [e["amount"] for e in good]
    assert cols["n"].dtype == np.int32 and cols["promo"].dtype == bool
    assert cols["promo"].tolist() == [e.get("promo", False) for e in good]
    # every bad message is a dead letter with its offset and reason
    assert sorted((d["offset"], d["reason"]) for d in r.dead_letters) == \
        sorted(bad_at.items())
    assert r.slice["dead_letters"] == len(bad_at) == 8
    # the replayed batches give the rows the original events give
    a, b2 = sw.Pipeline(SPEC), sw.Pipeline(SPEC)
    rows_a = [a.push(x).dense for x in batches] + [a.flush().dense]
    direct = {k: np.array([e.get(k, False) if k == "promo" else e[k]
                           for e in good]) for k in ("ts", "user", "amount",
                                                     "n", "promo")}
    rows_b = [b2.push(direct).dense, b2.flush().dense]
    assert np.concatenate(rows_a).tobytes() == \
        np.concatenate(rows_b).tobytes()


def test_schema_errors():
    with pytest.raises(sw.InvalidArgument, match="unknown type"):
        sw._sw.json_decoder('{"time": "ts", "fields": {"a": "text"}}')
    with pytest.raises(sw.InvalidArgument, match="defaults.b: not a field"):
        sw._sw.json_decoder('{"time": "ts", "fields": {"a": "str"}, '
                            '"defaults": {"b": 1}}')


def test_sink_writes_acknowledged_messages_with_headers():
    from streamwise.kafka import Sink
    with local_broker(topics=[("out", 2)]) as b:
        b.push_request_errors("Produce", 2, "NOT_LEADER_FOR_PARTITION")
        # one request in flight: the mock does not check the idempotent
        # producer's sequence numbers (docs/kafka.md)
        with Sink("out", b.bootstrap,
                  headers={"schema": "3", "model": "ctr@7"},
                  config={"max.in.flight.requests.per.connection": "1"}) as s:
            s.send([f"m{i}" for i in range(1000)],
                   keys=[f"u{i % 10}" for i in range(1000)],
                   timestamps=np.arange(1000) + T0)
            s.send(b"last", keys=b"u0", timestamps=T0 + 5000,
                   headers={"extra": "1"})
        assert s.flush() == {"sent": 1001, "acked": 1001, "failed": 0}
        got = collect(sw.replay.kafka("out", bootstrap=b.bootstrap))
        assert sorted(v.decode() for v in got["value"]) == \
            sorted([f"m{i}" for i in range(1000)] + ["last"])
        # one key, one partition
        by_key = {}
        for k, p in zip(got["key"], got["partition"]):
            by_key.setdefault(k, set()).add(int(p))
        assert all(len(v) == 1 for v in by_key.values())
        c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": "h"})
        c.assign([ck.TopicPartition("out", p, 0) for p in (0, 1)])
        m = None
        while m is None or m.error():
            m = c.poll(5)
        assert dict(m.headers())["model"] == b"ctr@7"
        c.close()
    with pytest.raises(sw.InvalidArgument, match="config"):
        Sink("x", "127.0.0.1:1", config={"acks": "sometimes"})


def test_sink_reports_messages_that_were_not_written():
    from streamwise.kafka import Sink
    with local_broker(topics=[("gone", 1)]) as b:
        s = Sink("gone", b.bootstrap, config={"message.timeout.ms": 2000})
        b.set_down()
        s.send([b"a", b"b"])
        with pytest.raises(sw.IOError, match="2 messages failed|not "
                           "acknowledged"):
            s.flush(10)


AVRO_V1 = {"type": "record", "name": "Event", "fields": [
    {"name": "ts", "type": "long"}, {"name": "user", "type": "string"},
    {"name": "amount", "type": "double"}, {"name": "n", "type": "int"}]}
# version 2 added promo with a default; readers use v2
AVRO_V2 = {"type": "record", "name": "Event", "fields": AVRO_V1["fields"] + [
    {"name": "promo", "type": ["null", "boolean"], "default": None}]}


def avro_bytes(schema, record, schema_id=None):
    """Encoded by Apache Avro's Python implementation (independent of the
    C decoder under test); Confluent framing when schema_id is given."""
    import io
    import json
    import struct

    import avro.io
    import avro.schema
    s = avro.schema.parse(json.dumps(schema))
    buf = io.BytesIO()
    if schema_id is not None:
        buf.write(b"\0" + struct.pack(">i", schema_id))
    avro.io.DatumWriter(s).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


@pytest.mark.parametrize("framing", ["confluent", "raw"])
def test_avro_events_decode_with_schema_evolution(framing):
    rng = np.random.default_rng(1)
    good, bad_at = [], {}
    with local_broker(topics=[("av", 1)]) as b:
        p = ck.Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        for i in range(3000):
            e = {"ts": T0 + i, "user": f"u{rng.integers(50)}",
                 "amount": float(np.round(rng.gamma(2, 5), 2)),
                 "n": int(rng.integers(100))}
            if framing == "confluent" and i % 2:
                e["promo"] = bool(i % 4 == 1) if i % 3 else None
                value = avro_bytes(AVRO_V2, e, 2)
            else:                                  # older writers: no promo
                value = avro_bytes(AVRO_V1, e, 1 if framing == "confluent"
                                   else None)
            if i % 700 == 11:
                if framing == "confluent" and i % 1400 == 11:
                    value, why = b"\0\0\0\0\x09" + value[5:], "unknown_schema"
                else:
                    value, why = value[:-1] + b"\x01\x02", "not_avro"
                bad_at[i] = why
            else:
                good.append(e)
            p.produce("av", value, partition=0, timestamp=T0 + i)
        assert p.flush(30) == 0
        writers = {1: AVRO_V1, 2: AVRO_V2} if framing == "confluent" \
            else {-1: AVRO_V1}
        r = sw.replay.kafka("av", bootstrap=b.bootstrap, schema=SPEC,
                            batch_size=512,
                            avro={"schema": AVRO_V2, "framing": framing,
                                  "writers": writers})
        batches = list(r)
    cols = {k: np.concatenate([x[k] for x in batches]) for k in batches[0]}
    assert cols["ts"].tolist() == [e["ts"] for e in good]
    assert cols["user"].tolist() == [e["user"] for e in good]
    assert cols["amount"].tolist() == [e["amount"] for e in good]
    assert cols["n"].tolist() == [e["n"] for e in good]
    # v1 records and null promo take the events schema's default (False)
    assert cols["promo"].tolist() == [bool(e.get("promo")) for e in good]
    assert sorted((d["offset"], d["reason"]) for d in r.dead_letters) == \
        sorted(bad_at.items())


def test_avro_schema_errors():
    d = sw._sw.json_decoder('{"time": "ts", "fields": {"a": "str"}}')
    with pytest.raises(sw.InvalidArgument, match="reader schema"):
        d.avro('{"type": "nope"}', sw._sw.FRAMING_CONFLUENT, [])
    with pytest.raises(sw.InvalidArgument, match="does not resolve"):
        d.avro('{"type": "record", "name": "E", "fields": '
               '[{"name": "a", "type": "string"}]}', sw._sw.FRAMING_CONFLUENT,
               [(1, '{"type": "record", "name": "E", "fields": '
                    '[{"name": "a", "type": "long"}]}')])
    with pytest.raises(sw.InvalidArgument, match="needs schema="):
        sw.replay.kafka("t", bootstrap="127.0.0.1:1", avro={"schema": "x"})


def take(consumer, n, deadline=30):
    """Batches from a live consumer until n messages arrived."""
    got, t0 = [], time.monotonic()
    while sum(len(b["offset"]) for b in got) < n:
        assert time.monotonic() - t0 < deadline, "consumer stalled"
        b = consumer.poll()
        if len(b["offset"]):
            got.append(b)
    return {k: np.concatenate([b[k] for b in got]) for k in got[0]}


# librdkafka 2.0.2's mock coordinator ignores LeaveGroup: a new member
# joins only once the old one's session timed out, so keep it short
QUICK = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


def test_live_consumer_group_commits_and_resumes():
    from streamwise.kafka import Consumer
    with local_broker(topics=[("live", 2)]) as b:
        publish(b.bootstrap, "live", 400, 2)
        with Consumer("live", "g1", b.bootstrap, batch_size=150,
                      wait=0.5, config=QUICK) as c:
            first = take(c, 150)
            c.commit()
            done = dict(c.positions)
            # events published while it runs arrive too
            p = ck.Producer({"bootstrap.servers": b.bootstrap})
            for i in range(400, 500):
                p.produce("live", f"v{i}".encode(), partition=i % 2,
                          timestamp=T0 + 10 * i)
            assert p.flush(10) == 0
        # a new member of the group resumes at the committed offsets:
        # nothing lost, nothing committed read again
        with Consumer("live", "g1", b.bootstrap, wait=0.5,
                      config=QUICK) as c2:
            rest = take(c2, 500 - len(first["offset"]))
            assert c2.poll()["offset"].size == 0     # nothing more
        for part, nxt in done.items():
            mine = rest["partition"] == part
            assert rest["offset"][mine].min() == nxt
        values = sorted(int(v[1:]) for v in
                        list(first["value"]) + list(rest["value"]))
        assert values == list(range(500))
        # without a commit, another group member gets everything again
        with Consumer("live", "g2", b.bootstrap, wait=0.5,
                      config=QUICK) as c3:
            take(c3, 500)
        with Consumer("live", "g2", b.bootstrap, wait=0.5,
                      config=QUICK) as c4:
            assert len(take(c4, 500)["offset"]) == 500


def test_live_consumer_resumes_at_the_checkpoint_not_the_commit():
    """A crash after a commit but before the next checkpoint: the restored
    state has seen fewer events than the group committed; start_at (the
    checkpoint's positions) wins, so none is lost. And after a checkpoint
    but before its commit, none is applied twice."""
    from streamwise.kafka import Consumer
    with local_broker(topics=[("ck", 2)]) as b:
        publish(b.bootstrap, "ck", 400, 2)
        with Consumer("ck", "g", b.bootstrap, batch_size=100, wait=0.5,
                      config=QUICK) as c:
            take(c, 100)
            at_checkpoint = dict(c.positions)
            take(c, 300)
            c.commit()                     # ahead of the checkpoint
        with Consumer("ck", "g", b.bootstrap, wait=0.5, config=QUICK,
                      start_at=at_checkpoint) as c2:
            rest = take(c2, 400 - sum(at_checkpoint.values()))
            assert len(rest["offset"]) == 400 - sum(at_checkpoint.values())
            assert c2.poll()["offset"].size == 0
        for part in (0, 1):    # a partition the checkpoint never saw
            mine = rest["partition"] == part   # starts at its beginning
            assert rest["offset"][mine].min() == at_checkpoint.get(part, 0)


def test_live_consumer_decodes_and_refuses_a_replay_commit():
    from streamwise.kafka import Consumer
    import json
    with local_broker(topics=[("lj", 1)]) as b:
        p = ck.Producer({"bootstrap.servers": b.bootstrap})
        for i in range(50):
            p.produce("lj", json.dumps({"ts": T0 + i, "user": f"u{i % 5}",
                                        "amount": 1.5, "n": i}).encode()
                      if i != 7 else b"{oops", partition=0)
        assert p.flush(10) == 0
        with Consumer("lj", "g", b.bootstrap, schema=SPEC, wait=0.5) as c:
            cols = take(c, 49)
            assert cols["n"].tolist() == [i for i in range(50) if i != 7]
            assert [d["offset"] for d in c.dead_letters] == [7]
        r = sw.replay.kafka("lj", bootstrap=b.bootstrap)
        with pytest.raises(sw.StateError, match="commits nothing"):
            r._src.commit()


def _murmur2(data):
    """Kafka's Utils.murmur2, written out here as the reference."""
    m = 0x5bd1e995
    h = (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[4 * n4:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h = ((h ^ rest[0]) * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def test_keys_land_in_the_partition_the_java_client_chooses():
    from streamwise.kafka import Sink, partition_of
    # the reference against Kafka's own test vectors (UtilsTest.testMurmur2)
    java = {b"21": -973932308, b"foobar": -790332482,
            b"a-little-bit-long-string": -985981536,
            b"a-little-bit-longer-string": -1486304829,
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
            b"abc": 479470107}
    for k, v in java.items():
        assert _murmur2(k) == v & 0xffffffff
    keys = [f"user-{i}" for i in range(500)] + ["", "é", "21"]
    want = [(_murmur2(k.encode()) & 0x7fffffff) % 7 for k in keys]
    assert partition_of(keys, 7) == want
    with local_broker(topics=[("m2", 7)]) as b:
        with Sink("m2", b.bootstrap) as s:
            s.send([f"v{i}" for i in range(len(keys))], keys=keys)
        assert s.flush() == {"sent": len(keys), "acked": len(keys),
                             "failed": 0}
        got = collect(sw.replay.kafka("m2", bootstrap=b.bootstrap))
        where = {bytes(k).decode(): int(p)
                 for k, p in zip(got["key"], got["partition"])}
        assert where == dict(zip(keys, want))
    with pytest.raises(sw.InvalidArgument, match="count >= 1"):
        partition_of(["a"], 0)
