"""Tenants in sw-serve run: events routed by a field to each tenant's own
model, loaded on the tenant's first event and held under a bound; a
tenant whose model cannot serve gets its events dead-lettered with the
reason and the others never notice. On the embedded broker, loopback
only, bounded in time."""
import json
import subprocess

import numpy as np
import pytest

import streamwise as sw
from streamwise import registry, serve

from test_runner_live import SPEC as BASE
from test_runner_live import free_port, wait_for


def _scored(run):
    try:
        return run.status()["predictions"]
    except OSError:
        return 0

SPEC = dict(BASE, events={"time": "ts", "time_unit": "us",
                          "fields": dict(BASE["events"]["fields"],
                                         shop="str")})
T0 = 1_700_000_000_000_000
SHOPS = ["s0", "s1", "s2", "s3", "s4", "s5"]


@pytest.fixture(autouse=True)
def no_runner_left():
    yield
    serve._end_all()


def events(n, seed):
    rng = np.random.default_rng(seed)
    shop = rng.choice(SHOPS, n)
    user = rng.integers(0, 200, n)
    values = [json.dumps({"ts": T0 + 30_000 * i, "user": f"u{user[i]}",
                          "shop": str(shop[i]), "item": int(i % 50),
                          "price": float(np.round(rng.gamma(2, 10), 2)),
                          "click": int(rng.random() < 0.2)})
              for i in range(n)]
    return [f"u{u}" for u in user], values, shop


def train(path, spec, seed, n_estimators):
    _, values, _ = events(3000, seed)
    cols = {k: [] for k in spec["events"]["fields"]}
    cols["ts"] = []
    for v in values:
        d = json.loads(v)
        for k in cols:
            cols[k].append(d[k])
    cols = {k: np.array(v, dtype=object if k in ("user", "shop") else None)
            for k, v in cols.items()}
    p = sw.Pipeline(spec, emission="arrival")
    out = p.push(cols)
    m = sw.GBDTClassifier(n_estimators=n_estimators, num_leaves=7).fit(
        serve.features(out, sparse=False), cols["click"][out.index])
    m.save(path, pipeline=p, sparse=False)
    return path


def events_of(shops, n, seed):
    """The events of those shops among n: keys, values, shop."""
    keys, values, shop = events(n, seed)
    mine = np.isin(shop, shops)
    return ([k for k, m in zip(keys, mine) if m],
            [v for v, m in zip(values, mine) if m], shop[mine])


def champions(tmp_path, shops, specs=None):
    """Each shop's model (trained on SPEC, or on specs[shop]) registered as
    shop-<shop> and promoted to champion: (store, {shop: file})."""
    store = str(tmp_path / "store")
    files = {}
    for i, shop in enumerate(shops):
        spec = (specs or {}).get(shop, SPEC)
        files[shop] = train(str(tmp_path / f"{shop}.swm"), spec, i, 5 + i)
        v = registry.register(files[shop], f"shop-{shop}", store=store)
        registry.promote(f"shop-{shop}", v, reason="t", store=store)
    return store, files


def test_each_tenant_its_model_and_a_refused_one_alone(tmp_path):
    store, files = champions(
        tmp_path, SHOPS[:5],
        {"s3": dict(SPEC, features=SPEC["features"][:-1])})  # another pipeline
    # s5 has no model at all
    keys, values, shop = events(6000, seed=9)
    with sw.kafka.local_broker(partitions=2) as b:
        b.create_topic("orders", 2)
        with sw.kafka.Sink("orders", b.bootstrap) as s:
            s.send(values, keys=keys)
        out, dead = tmp_path / "o.jsonl", tmp_path / "dead.jsonl"
        # the bundle (here s0's champion) defines the shared pipeline
        job = serve.Job(serve.kafka_source("orders", b.bootstrap),
                        "shop-s0@champion", registry=store, key="user",
                        sinks=[serve.jsonl(out)],
                        dead_letters=serve.jsonl(dead), reload=False,
                        tenants={"field": "shop", "model": "shop-{}@champion",
                                 "max_loaded": 2})
        job.save(tmp_path / "job.json")
        r = subprocess.run([serve.runner_program(), "run",
                            str(tmp_path / "job.json")], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        # the same live, with the per-tenant counters on /metrics
        port = free_port()
        live = serve.Job(serve.kafka_source("orders", b.bootstrap,
                                            group="live"),
                         "shop-s0@champion", registry=store, key="user",
                         sinks=[serve.jsonl(tmp_path / "live.jsonl")],
                         dead_letters=serve.jsonl(tmp_path / "ld.jsonl"),
                         reload=False, metrics_port=port,
                         tenants={"field": "shop",
                                  "model": "shop-{}@champion"})
        run = live.start(str(tmp_path / "live.json"))
        n_ok = int(sum((shop == s_).sum() for s_ in ("s0", "s1", "s2", "s4")))
        try:
            wait_for(lambda: _scored(run) >= n_ok, 60, "the live run")
            metrics = run.metrics()
        finally:
            run.stop()
        for s_ in ("s0", "s1", "s2", "s4"):
            assert metrics[f'sw_tenant_predictions_total{{tenant="{s_}"}}'] \
                == (shop == s_).sum()
            assert metrics[f'sw_tenant_model_info{{tenant="{s_}",'
                           f'model="shop-{s_}@1"}}'] == 1
        for s_ in ("s3", "s5"):
            assert metrics[f'sw_tenant_dead_letters_total{{tenant="{s_}"}}'] \
                == (shop == s_).sum()
            assert metrics[f'sw_tenant_model_info{{tenant="{s_}",'
                           f'model=""}}'] == 0
        assert metrics["sw_tenant_refusals_total"] == 2
        # the state's size beside its keys (issue 15)
        assert metrics["sw_keys"] > 0
        assert metrics["sw_state_bytes"] >= 24 * metrics["sw_keys"]
        offline = {}
        for s_ in ("s0", "s1", "s2", "s4"):
            nb = serve.score_stream(sw.learners.load(files[s_]),
                                    sw.replay.kafka("orders", b.bootstrap,
                                                    schema=SPEC),
                                    key="user", emission="arrival")
            offline[s_] = {(x.partition, x.offset): x.prediction
                           for x in nb.itertuples()}
        shop_of = {}
        for bt in sw.replay.kafka("orders", b.bootstrap, schema=SPEC):
            for p_, o_, s_ in zip(bt["partition"], bt["offset"], bt["shop"]):
                shop_of[(int(p_), int(o_))] = s_
    lines = [json.loads(x) for x in open(out)]
    deads = [json.loads(x) for x in open(dead)]
    # every event once: scored by its tenant's model, or a dead letter
    assert len(lines) + len(deads) == 6000
    counts = {s_: int((shop == s_).sum()) for s_ in SHOPS}
    for d in lines:
        key = (d["partition"], d["offset"])
        assert d["tenant"] == shop_of[key]
        assert d["model"] == f"shop-{d['tenant']}@1"
        assert np.float64(d["prediction"]).tobytes() == \
            np.float64(offline[d["tenant"]][key]).tobytes()
    assert sorted({d["tenant"] for d in lines}) == ["s0", "s1", "s2", "s4"]
    assert len(lines) == sum(counts[s_] for s_ in ("s0", "s1", "s2", "s4"))
    assert {shop_of[(d["partition"], d["offset"])] for d in deads} == \
        {"s3", "s5"}
    assert all(d["reason"] == "tenant_refused" and d["field"] == "shop"
               for d in deads)
    assert len(deads) == counts["s3"] + counts["s5"]
    assert "tenant s3 refused: shop-s3@champion: its pipeline" in r.stderr
    assert "tenant s5 refused: registry" in r.stderr


def test_tenant_settings_are_checked(tmp_path):
    for tenants, msg in [
            ({"field": "shop"}, "job: tenants.model: expected a registry "
                                "reference or path with {}"),
            ({"field": "shop", "model": "m@x"}, "with {} where"),
            ({"model": "{}.swm"}, "job: tenants.field: expected"),
            ({"field": "shop", "model": "{}.swm", "max_loaded": 0},
             "job: tenants.max_loaded: expected"),
            ({"field": "shop", "model": "{}.swm", "color": 1},
             "job: tenants.color: unknown key"),
            ({"field": "shop", "model": "{}.swm"},
             "job: tenants: expected no shadow, canary, learn or evaluate")]:
        job = {"source": {"hdf5": {"path": "x.h5", "event_type": "e"}},
               "bundle": "b.swm", "tenants": tenants}
        if tenants.get("model") == "{}.swm" and "field" in tenants and \
                len(tenants) == 2:
            job["shadow"] = "s.swm"          # a tenant has its own model
        (tmp_path / "j.json").write_text(json.dumps(job))
        r = subprocess.run([serve.runner_program(), "run",
                            str(tmp_path / "j.json")], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2
        assert msg in r.stderr, r.stderr


def test_tenants_follow_their_aliases_and_a_bad_version_is_refused_alone(
        tmp_path):
    """A tenant's alias moved while the runner serves it: the new version
    is verified off the scoring path and serves the tenant's next events;
    a version with another pipeline is refused and the tenant's old one
    keeps serving; both go to the deployment log."""
    store, files = champions(tmp_path, SHOPS[:3])
    files["s1v2"] = train(str(tmp_path / "s1v2.swm"), SPEC, 11, 9)
    files["s2v2"] = train(str(tmp_path / "s2v2.swm"),
                          dict(SPEC, features=SPEC["features"][:-1]), 12, 9)
    keys, values, shop = events(4000, seed=19)
    mine = np.isin(shop, SHOPS[:3])
    keys = [k for k, m in zip(keys, mine) if m]
    values = [v for v, m in zip(values, mine) if m]
    half = len(values) // 2
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("shops", 1)
        port = free_port()
        job = serve.Job(serve.kafka_source("shops", b.bootstrap, group="g"),
                        "shop-s0@champion", registry=store, key="user",
                        sinks=[serve.jsonl(tmp_path / "o.jsonl")],
                        reload={"poll_s": 0.2}, metrics_port=port,
                        runner_name="tenant-runner",
                        tenants={"field": "shop",
                                 "model": "shop-{}@champion"})
        run = job.start(str(tmp_path / "job.json"))
        try:
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[:half], keys=keys[:half])
            wait_for(lambda: _scored(run) >= half, 60, "the first half")
            v = registry.register(files["s1v2"], "shop-s1", store=store)
            registry.promote("shop-s1", v, reason="better", store=store)
            v = registry.register(files["s2v2"], "shop-s2", store=store)
            registry.promote("shop-s2", v, reason="other pipeline",
                             store=store)
            wait_for(lambda: run.metrics()["sw_model_refusals_total"] >= 1,
                     30, "the refusal of shop-s2's version 2")
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[half:], keys=keys[half:])
            wait_for(lambda: _scored(run) >= len(values), 60,
                     "the second half")
        finally:
            err = run.stop()
        offline = {}
        for name in ("s0", "s1", "s2", "s1v2"):
            nb = serve.score_stream(sw.learners.load(files[name]),
                                    sw.replay.kafka("shops", b.bootstrap,
                                                    schema=SPEC),
                                    key="user", emission="arrival")
            offline[name] = {x.offset: x.prediction for x in nb.itertuples()}
    lines = [json.loads(x) for x in open(tmp_path / "o.jsonl")]
    assert len(lines) == len(values)
    by_model = {"shop-s0@1": "s0", "shop-s1@1": "s1", "shop-s2@1": "s2",
                "shop-s1@2": "s1v2"}
    for d in lines:
        # every event scored by exactly one version, and by its bits
        assert np.float64(d["prediction"]).tobytes() == np.float64(
            offline[by_model[d["model"]]][d["offset"]]).tobytes()
    s1 = [d["model"] for d in lines if d["tenant"] == "s1"]
    s1_first_half = [d["model"] for d in lines[:half] if d["tenant"] == "s1"]
    assert set(s1_first_half) == {"shop-s1@1"}
    # one switch, and the tenant's later events on version 2
    switch = s1.index("shop-s1@2")
    assert set(s1[switch:]) == {"shop-s1@2"} and switch >= len(s1_first_half)
    assert {d["model"] for d in lines if d["tenant"] == "s2"} == {"shop-s2@1"}
    assert "tenant s2: shop-s2@champion version 2" in err
    assert "refused, still serving version 1" in err
    dep = registry.deployments("shop-s1", store=store)
    assert ((dep["version"] == 2) & (dep["status"] == "serving")
            & (dep["runner"] == "tenant-runner")).any()
    dep = registry.deployments("shop-s2", store=store)
    assert ((dep["version"] == 2) & (dep["status"] == "refused")).any()


def test_one_tenant_retired_on_the_control_topic_then_deployed_again(
        tmp_path):
    """registry.retire of one tenant's reference: that tenant alone stops
    being served at its next event (its events dead letters
    "tenant_retired", "retired" in the deployment log), the others are
    scored on by their models' bits and the runner keeps running; a later
    promotion of the reference serves the tenant again."""
    import time
    store, files = champions(tmp_path, SHOPS[:3])
    keys, values, shop = events_of(SHOPS[:3], 4500, seed=23)
    third = len(values) // 3
    out, dead = tmp_path / "o.jsonl", tmp_path / "dead.jsonl"
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("shops", 1)
        b.create_topic("sw-control", 1)
        control = {"topic": "sw-control", "bootstrap": b.bootstrap}
        job = serve.Job(serve.kafka_source("shops", b.bootstrap, group="g"),
                        "shop-s0@champion", registry=store, key="user",
                        sinks=[serve.jsonl(out)],
                        dead_letters=serve.jsonl(dead),
                        reload={"poll_s": 0.2}, control=control,
                        metrics_port=free_port(), runner_name="tr",
                        tenants={"field": "shop",
                                 "model": "shop-{}@champion"})
        run = job.start(str(tmp_path / "job.json"))

        def done():
            return _scored(run) + run.metrics().get(
                "sw_dead_letters_total", 0)

        try:
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[:third], keys=keys[:third])
            wait_for(lambda: _scored(run) >= third, 60, "the first third")
            time.sleep(1.5)        # the control consumer holds its partition
            registry.retire("shop-s1", reason="shop closed", control=control)
            wait_for(lambda: "tenant s1: retired on sw-control: shop closed"
                     in open(run.log).read(), 15, "the retirement read")
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[third:2 * third], keys=keys[third:2 * third])
            wait_for(lambda: done() >= 2 * third, 60, "the second third")
            assert run.alive()
            registry.promote("shop-s1", 1, reason="reopened", store=store,
                             control=control)
            wait_for(lambda: "tenant s1: deployed again on sw-control"
                     in open(run.log).read(), 15, "the deploy read")
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[2 * third:], keys=keys[2 * third:])
            wait_for(lambda: done() >= len(values), 60, "the last third")
            metrics = run.metrics()
        finally:
            log = run.stop()
        offline = {}
        for name in SHOPS[:3]:
            nb = serve.score_stream(sw.learners.load(files[name]),
                                    sw.replay.kafka("shops", b.bootstrap,
                                                    schema=SPEC),
                                    key="user", emission="arrival")
            offline[name] = {x.offset: x.prediction for x in nb.itertuples()}
    lines = [json.loads(x) for x in open(out)]
    deads = [json.loads(x) for x in open(dead)]
    # every event once; the retired tenant's middle third dead-lettered
    assert len(lines) + len(deads) == len(values)
    want_dead = [o for o in range(third, 2 * third) if shop[o] == "s1"]
    assert sorted(d["offset"] for d in deads) == want_dead
    assert all(d["reason"] == "tenant_retired" and d["field"] == "shop"
               for d in deads)
    for d in lines:
        assert d["model"] == f"shop-{d['tenant']}@1"
        assert np.float64(d["prediction"]).tobytes() == np.float64(
            offline[d["tenant"]][d["offset"]]).tobytes()
    # the others never noticed; s1 served again in the last third
    assert {d["tenant"] for d in lines if d["offset"] >= 2 * third} == \
        set(SHOPS[:3])
    assert metrics['sw_tenant_dead_letters_total{tenant="s1"}'] == \
        len(want_dead)
    assert "tenant s1: deployed again" in log
    dep = registry.deployments("shop-s1", store=store)
    row = dep[dep["status"] == "retired"]
    assert len(row) == 1 and row["runner"].iloc[0] == "tr"
    assert row["reason"].iloc[0] == "retired on sw-control: shop closed"


def test_a_retired_tenant_stays_retired_after_sigkill_and_restart(
        tmp_path):
    """The control topic is the tenants' state: a runner killed after a
    retirement and started again reads it to its end before serving, so
    the retired tenant's events stay dead letters from the first one
    after the restart (no event of it scored), and the others are served
    as before."""
    store, files = champions(tmp_path, SHOPS[:3])
    keys, values, shop = events_of(SHOPS[:3], 4500, seed=29)
    half = len(values) // 2
    out, dead = tmp_path / "o.jsonl", tmp_path / "dead.jsonl"
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("shops", 1)
        b.create_topic("sw-control", 1)
        control = {"topic": "sw-control", "bootstrap": b.bootstrap}
        job = serve.Job(serve.kafka_source(
                            "shops", b.bootstrap, group="g",
                            config={"session.timeout.ms": "6000",
                                    "heartbeat.interval.ms": "500"}),
                        "shop-s0@champion", registry=store, key="user",
                        sinks=[serve.jsonl(out)],
                        dead_letters=serve.jsonl(dead),
                        checkpoint={"dir": str(tmp_path / "ckpt"),
                                    "every_s": 0.2},
                        reload={"poll_s": 0.2}, control=control,
                        metrics_port=free_port(), runner_name="tr",
                        tenants={"field": "shop",
                                 "model": "shop-{}@champion"})
        run = job.start(str(tmp_path / "job.json"))
        try:
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[:half], keys=keys[:half])
            wait_for(lambda: _scored(run) >= half, 60, "the first half")
            registry.retire("shop-s1", reason="shop closed", control=control)
            wait_for(lambda: "tenant s1: retired on sw-control: shop closed"
                     in open(run.log).read(), 15, "the retirement read")
            run.kill()                                 # SIGKILL
            run = job.start(str(tmp_path / "job.json"))
            wait_for(lambda: "tenant s1: retired on sw-control: shop closed"
                     in open(run.log).read(), 30,
                     "the retirement read again before serving")
            with sw.kafka.Sink("shops", b.bootstrap) as s:
                s.send(values[half:], keys=keys[half:])
            want = len(values) - half

            def after():
                got = {json.loads(x)["offset"] for x in open(out)}
                got |= {json.loads(x)["offset"] for x in open(dead)}
                return sum(o >= half for o in got) >= want
            wait_for(after, 60, "the second half")
        finally:
            log = run.stop()
    assert "control topic sw-control read to its end" in log
    lines = [json.loads(x) for x in open(out)]
    deads = [json.loads(x) for x in open(dead)]
    # after the restart: no event of s1 scored, every one dead-lettered
    assert not [d for d in lines if d["offset"] >= half and
                d["tenant"] == "s1"]
    assert {d["offset"] for d in deads if d["offset"] >= half} == \
        {o for o in range(half, len(values)) if shop[o] == "s1"}
    assert all(d["reason"] == "tenant_retired" for d in deads)
    # the others were served, each event of them at least once
    assert {d["offset"] for d in lines if d["offset"] >= half} == \
        {o for o in range(half, len(values)) if shop[o] != "s1"}
