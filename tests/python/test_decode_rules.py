"""The JSON decoder's rules, message by message: what is an event, and
what is a dead letter and why. These are jansson's rules (strict RFC 8259,
checked UTF-8, no NUL, 64-bit integers, finite doubles, the last of a
duplicated key), which the decoder kept when it moved to yajl's streaming
parser; the outcomes below were the jansson decoder's on this corpus."""
import numpy as np
import pytest

import streamwise as sw

confluent_kafka = pytest.importorskip("confluent_kafka")

SPEC = {"events": {"time": "ts", "time_unit": "ms",
                   "fields": {"user": "str", "n": "int64", "x": "float64",
                              "ok": "bool", "k": "int8"},
                   "defaults": {"k": 7}}}
MESSAGES = [b'{"ts": 5, "user": "a", "n": 1, "x": 2.5, "ok": true}',
 b'{"ts": 5, "user": "a", "n": 1.0, "x": 2, "ok": 1, "k": 3}',
 b'{"ts": 5, "user": "a", "n": 1.5, "x": 2, "ok": 1}',
 b'{"ts": 5, "user": "a", "n": 9223372036854775807, "x": 1e308, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 9223372036854775808, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": -9223372036854775808, "x": 1e400, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1e-400, "ok": false}',
 b'{"ts": 5, "user": "a\\u0000b", "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "\\u00e9\\ud83d\\ude00", "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "\xff", "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false} trailing',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false}{}',
 b'  {"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false}  \n',
 b'[1, 2]', b'5', b'"s"', b'null', b'', b'{}', b'{"ts": 5}',
 b'{"ts": 5, "user": ["a"], "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": {"a": 1}, "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false, "extra": {"user": 3, "n": [1,{"x":2}]}}',
 b'{"ts": 5, "user": "a", "user": "b", "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": null, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": null, "ok": false, "k": null}',
 b'{"ts": null, "user": "a", "n": 1, "x": 1, "ok": false}',
 b'{"user": "a", "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": NaN, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": "true"}',
 b'{"ts": 5, "user": 3, "n": 1, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1e3, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1E3, "x": -0.0, "ok": 2}',
 b'{"ts": 5, "user": "a", "n": 01, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false,}',
 b"{'ts': 5}", b'{"ts": 5, /* c */ "user": "a"}',
 b'{"ts": 5, "user": "a", "n": 12345678901234567890123, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 123456789012345678901234567890123456789012345678901234567890123456789.5, "ok": false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false, "k": 1.0}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false, "k": true}',
 b'{"ts": 5, "user": "a", "n": 9.5e15, "x": 1, "ok": false}',
 b'{"ts": 5, "user": "a", "n": -8.9e15, "x": 1, "ok": false}',
 b'{"ts": 5, "us\\u0000er": "a", "user": "b", "n": 1, "x": 1, "ok": false}',
 b'{"ts":5,"user":"\\"q\\\\","n":1,"x":1,"ok":false}',
 b'{"ts": 5, "user": "a", "n": 1, "x": 1, "ok": false',
 b'{"ts": 5, "user": "a", "n": -, "x": 1, "ok": false}',
]

# offset -> (user, n, x, ok, k, ts) of a decoded event, or the dead
# letter's reason; the last message is a null value
WANT = {
    0: ("a", 1, 2.5, True, 7, 5), 1: ("a", 1, 2.0, True, 3, 5),
    2: "wrong_type",                     # 1.5 for an int64
    3: ("a", 9223372036854775807, 1e308, False, 7, 5),
    4: "not_json", 5: "not_json",        # beyond int64; beyond a double
    6: ("a", 1, 0.0, False, 7, 5),       # an underflow is 0
    7: "not_json",                       # NUL in a string
    8: ("\u00e9\U0001f600", 1, 1.0, False, 7, 5),
    9: "not_json", 10: "not_json", 11: "not_json",   # bad UTF-8, garbage
    12: ("a", 1, 1.0, False, 7, 5),      # white space around is fine
    13: "not_object", 14: "not_json", 15: "not_json", 16: "not_json",
    17: "not_json", 18: "missing", 19: "missing",
    20: "wrong_type", 21: "wrong_type",  # a list, an object for a str
    22: ("a", 1, 1.0, False, 7, 5),      # nested values of other keys
    23: ("b", 1, 1.0, False, 7, 5),      # a repeated key: the last
    24: "missing", 25: "missing",        # null is missing (k has a default)
    26: ("a", 1, 1.0, False, 7, 1026), 27: ("a", 1, 1.0, False, 7, 1027),
    28: "not_json", 29: "wrong_type", 30: "wrong_type",
    31: ("a", 1000, 1.0, False, 7, 5), 32: ("a", 1000, -0.0, True, 7, 5),
    33: "not_json", 34: "not_json", 35: "not_json", 36: "not_json",
    37: "not_json", 38: ("a", 1, 1.234567890123457e+68, False, 7, 5),
    39: ("a", 1, 1.0, False, 1, 5), 40: "wrong_type", 41: "wrong_type",
    42: ("a", -8900000000000000, 1.0, False, 7, 5),
    43: "not_json", 44: ('"q\\', 1, 1.0, False, 7, 5),
    45: "not_json", 46: "not_json", 47: "not_json",
}


def test_every_message_is_an_event_or_a_dead_letter_with_its_reason():
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("c", 1)
        p = confluent_kafka.Producer({"bootstrap.servers": b.bootstrap})
        for i, m in enumerate(MESSAGES):
            p.produce("c", value=m, timestamp=1000 + i)
        p.produce("c", value=None, timestamp=2000)
        assert p.flush(10) == 0
        r = sw.replay.kafka("c", b.bootstrap, schema=SPEC)
        got = {}
        for bb in r:
            for i in range(len(bb["offset"])):
                got[int(bb["offset"][i])] = tuple(
                    bb[k][i].item() if hasattr(bb[k][i], "item") else
                    bb[k][i] for k in ("user", "n", "x", "ok", "k", "ts"))
        for d in r.dead_letters:
            got[d["offset"]] = d["reason"]
    assert len(got) == len(MESSAGES) + 1
    for off, want in WANT.items():
        assert got[off] == want, (off, MESSAGES[off] if off < 47 else None)
        if isinstance(want, tuple):    # -0.0 keeps its sign
            assert np.float64(got[off][2]).tobytes() == \
                np.float64(want[2]).tobytes()


def test_a_kafka_timestamp_that_does_not_fit_in_nanoseconds_is_refused():
    """A message without its time field takes the Kafka timestamp, scaled
    to the schema's unit: past 2262 nanoseconds overflow int64."""
    spec = {"events": {"time": "ts", "time_unit": "ns",
                       "fields": {"user": "str"}}}
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("ns", 1)
        p = confluent_kafka.Producer({"bootstrap.servers": b.bootstrap})
        p.produce("ns", value=b'{"user": "a"}', timestamp=1_700_000_000_000)
        p.produce("ns", value=b'{"user": "b"}',
                  timestamp=9_300_000_000_000)          # year 2264
        assert p.flush(10) == 0
        r = sw.replay.kafka("ns", b.bootstrap, schema=spec)
        rows = [x for x in r]
    assert rows[0]["ts"].tolist() == [1_700_000_000_000 * 10**6]
    assert [(d["offset"], d["reason"]) for d in r.dead_letters] == \
        [(1, "missing")]
