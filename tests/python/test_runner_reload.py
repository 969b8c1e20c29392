"""sw-serve run follows its registry alias: a promotion is deployed within
seconds, between two batches, with no event lost or scored twice; a
version that cannot serve is refused while the old one keeps serving; the
registry's deployment log says what each runner did. On the embedded
broker, loopback only, bounded in time."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import streamwise as sw
from streamwise import registry, serve

from conftest import STORE_KINDS, make_store
from test_runner_live import (SPEC, events, free_port, lines_by_event,
                              produce, train_bundle, wait_for)


@pytest.fixture(autouse=True)
def no_runner_left():
    yield
    serve._end_all()


def status_says(run, **want):
    """A condition: the runner's /status has these values (False while its
    endpoint is not up yet)."""
    def check():
        try:
            st = run.status()
        except OSError:
            return False
        return all(st[k] >= v if isinstance(v, int) else st[k] == v
                   for k, v in want.items())
    return check


def bundle_with_other_pipeline(path):
    """A bundle whose pipeline lacks one feature: its state would differ."""
    spec = dict(SPEC, features=SPEC["features"][:-2] + SPEC["features"][-1:])
    _, _, cols = events(3000, seed=5)
    p = sw.Pipeline(spec, emission="arrival")
    out = p.push(cols)
    m = sw.SCWClassifier().fit(serve.features(out), cols["click"][out.index])
    m.save(path, pipeline=p)
    return path


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_promotion_deploys_between_batches_and_a_bad_version_is_refused(
        tmp_path, kind, request):
    # on PostgreSQL the runner finds the registry through libpq and hears
    # promotions by LISTEN; the same test, the same bits
    store = make_store(kind, tmp_path, request)
    files = {"v1": train_bundle(str(tmp_path / "v1.swm"), n=4000),
             "v2": train_bundle(str(tmp_path / "v2.swm"), n=6000),
             "other": bundle_with_other_pipeline(str(tmp_path / "o.swm")),
             "v4": train_bundle(str(tmp_path / "v4.swm"), kind="scw")}
    versions = {k: registry.register(f, "fraud", store=store)
                for k, f in files.items()}
    assert versions == {"v1": 1, "v2": 2, "other": 3, "v4": 4}
    registry.promote("fraud", 1, reason="first", store=store)
    keys, values, _ = events(8000, seed=11)
    chunks = [(0, 2000), (2000, 4000), (4000, 6000), (6000, 8000)]
    with sw.kafka.local_broker(partitions=2) as b:
        b.create_topic("bets", 2)
        port = free_port()
        out = tmp_path / "live.jsonl"
        job = serve.Job(serve.kafka_source("bets", b.bootstrap, group="g"),
                        "fraud@champion", registry=store, key="user",
                        sinks=[serve.jsonl(out)], metrics_port=port,
                        reload={"poll_s": 0.2}, runner_name="test-runner")
        run = job.start(str(tmp_path / "job.json"))

        def serving(model):
            return status_says(run, model=model)

        def scored(n):
            return status_says(run, predictions=n)

        try:
            wait_for(serving("fraud@1"), 30, "the runner to start")
            produce(b.bootstrap, "bets", keys[:2000], values[:2000])
            wait_for(scored(2000), 60, "the first chunk")
            registry.promote("fraud", 2, reason="better AUC", store=store)
            wait_for(serving("fraud@2"), 5, "the promotion to deploy")
            produce(b.bootstrap, "bets", keys[2000:4000], values[2000:4000])
            wait_for(scored(4000), 60, "the second chunk")
            # another pipeline: refused, version 2 keeps serving
            registry.promote("fraud", 3, reason="try it", store=store)
            wait_for(lambda: run.metrics().get("sw_model_refusals_total"),
                     5, "the refusal")
            produce(b.bootstrap, "bets", keys[4000:6000], values[4000:6000])
            wait_for(scored(6000), 60, "the third chunk")
            assert run.status()["model"] == "fraud@2"
            registry.promote("fraud", 4, reason="scw", store=store)
            wait_for(serving("fraud@4"), 5, "the second promotion")
            produce(b.bootstrap, "bets", keys[6000:], values[6000:])
            wait_for(scored(8000), 60, "the last chunk")
            metrics = run.metrics()
        finally:
            run.stop()
        # the notebook's scores of every version over the whole stream:
        # the pipeline state runs on across swaps, so each event's
        # prediction is the one its version gives it offline
        offline = {}
        for k in ("v1", "v2", "v4"):
            nb = serve.score_stream(sw.learners.load(files[k]),
                                    sw.replay.kafka("bets", b.bootstrap,
                                                    schema=SPEC),
                                    key="user", emission="arrival")
            offline[k] = {(r.partition, r.offset): r.prediction
                          for r in nb.itertuples()}
    live = lines_by_event(out)           # asserts: no event twice
    assert len(live) == 8000             # ... and none lost
    by_version = {}
    ts_of = {}
    for key, line in live.items():
        d = json.loads(line)
        by_version.setdefault(d["model"], []).append(key)
        ts_of[key] = d["time_us"]
        want = offline[{"fraud@1": "v1", "fraud@2": "v2",
                        "fraud@4": "v4"}[d["model"]]][key]
        assert np.float64(d["prediction"]).tobytes() == \
            np.float64(want).tobytes()
    # each chunk was produced after its version was serving
    t_chunk = [json.loads(v)["ts"] for v in values]
    expect = ["fraud@1", "fraud@2", "fraud@2", "fraud@4"]
    for (a, z), model in zip(chunks, expect):
        lo, hi = t_chunk[a], t_chunk[z - 1]
        got = {m for m, ks in by_version.items() for k in ks
               if lo <= ts_of[k] <= hi}
        assert got == {model}, (a, z, got)
    assert set(by_version) == {"fraud@1", "fraud@2", "fraud@4"}
    assert metrics["sw_model_reloads_total"] == 2
    assert metrics["sw_model_refusals_total"] == 1
    assert metrics["sw_model_swap_max_seconds"] < 0.05
    # the registry's deployment log, as the runner wrote it
    dep = registry.deployments("fraud", store=store)
    rows = list(zip(dep["status"], dep["version"].astype(int), dep["runner"]))
    assert rows == [("serving", 1, "test-runner"),
                    ("serving", 2, "test-runner"),
                    ("refused", 3, "test-runner"),
                    ("serving", 4, "test-runner")]
    assert "pipeline" in dep["reason"][2]
    # promotions and deployments side by side
    cli = subprocess.run([sys.executable, "-m", "streamwise", "models",
                          "history", "fraud", "--store", store],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             sys.path)))
    assert cli.returncode == 0, cli.stderr
    assert "fraud@champion: 2 -> 3" in cli.stdout
    assert "refused version 3 on test-runner" in cli.stdout
    assert cli.stdout.index("generation 2") < \
        cli.stdout.index("serving version 2")


def test_a_file_changed_after_registration_is_refused_and_a_pin_stays(
        tmp_path):
    store = str(tmp_path / "store")
    v1 = train_bundle(str(tmp_path / "v1.swm"), n=3000)
    v2 = train_bundle(str(tmp_path / "v2.swm"), n=4000)
    registry.register(v1, "m", store=store)
    registry.register(v2, "m", store=store)
    registry.promote("m", 1, reason="first", store=store)
    # the stored copy of version 2 is damaged after registration
    stored = registry.resolve("m@2", store=store).path
    with open(stored, "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("t", 1)
        port = free_port()
        job = serve.Job(serve.kafka_source("t", b.bootstrap, group="g"),
                        "m@champion", registry=store, key="user",
                        sinks=[serve.jsonl(tmp_path / "o.jsonl")],
                        metrics_port=port, reload={"poll_s": 0.1})
        run = job.start(str(tmp_path / "job.json"))
        pinned = serve.Job(serve.kafka_source("t", b.bootstrap, group="g2"),
                           "m@champion", registry=store, key="user",
                           sinks=[serve.jsonl(tmp_path / "p.jsonl")],
                           metrics_port=free_port(), reload=False)
        prun = pinned.start(str(tmp_path / "pinned.json"))
        try:
            wait_for(status_says(run, model="m@1"), 30, "start")
            wait_for(status_says(prun, model="m@1"), 30, "start")
            registry.promote("m", 2, reason="damaged", store=store)
            wait_for(lambda: run.metrics().get("sw_model_refusals_total"), 5,
                     "the refusal")
            assert run.status()["model"] == "m@1"
            assert prun.status()["reloads"] == 0
        finally:
            run.stop()
            prun.stop()
    dep = registry.deployments("m", store=store)
    assert list(dep["status"]) == ["serving", "refused"]
    assert "changed after registration" in dep["reason"].iloc[1]


def test_reload_settings_are_checked(tmp_path):
    bundle = train_bundle(str(tmp_path / "b.swm"), n=2000)
    for reload, registry_dir, msg in [
            ({"poll_s": 0}, str(tmp_path), "job: reload: expected false, "
                                           "or {\"poll_s\""),
            ({"every": 1}, str(tmp_path), "job: reload.every: unknown key (known: poll_s)"),
            ({"poll_s": 1}, None, "job: reload: expected a \"registry\" to "
                                  "follow")]:
        job = serve.Job(serve.hdf5_source(str(tmp_path / "x.h5"), "e"),
                        bundle, registry=registry_dir, reload=reload)
        job.save(tmp_path / "j.json")
        r = subprocess.run([serve.runner_program(), "run",
                            str(tmp_path / "j.json")], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2
        assert msg in r.stderr, r.stderr


def test_shadow_and_canary_score_beside_the_champion(tmp_path):
    store = str(tmp_path / "store")
    files = {"champ": train_bundle(str(tmp_path / "c.swm"), n=4000),
             "chall": train_bundle(str(tmp_path / "s.swm"), kind="scw"),
             "canary": train_bundle(str(tmp_path / "k.swm"), n=6000),
             "chall2": train_bundle(str(tmp_path / "s2.swm"), n=5000),
             "other": bundle_with_other_pipeline(str(tmp_path / "o.swm"))}
    for k in ("champ", "chall", "canary", "chall2", "other"):
        registry.register(files[k], "fraud", store=store)
    registry.promote("fraud", 1, alias="champion", reason="a", store=store)
    registry.promote("fraud", 2, alias="challenger", reason="b", store=store)
    registry.promote("fraud", 3, alias="canary", reason="c", store=store)
    keys, values, _ = events(6000, seed=21)
    with sw.kafka.local_broker(partitions=2) as b:
        b.create_topic("bets", 2)
        # a shadow of another pipeline cannot score the same rows
        bad = serve.Job(serve.kafka_source("bets", b.bootstrap, group="x"),
                        "fraud@champion", registry=store, key="user",
                        shadow="fraud@5", sinks=[serve.jsonl(tmp_path / "x")])
        bad.save(tmp_path / "bad.json")
        r = subprocess.run([serve.runner_program(), "run",
                            str(tmp_path / "bad.json")], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1
        assert "fraud@5: its pipeline" in r.stderr
        assert "so it must be trained on the same pipeline" in r.stderr
        port = free_port()
        out = tmp_path / "live.jsonl"
        job = serve.Job(serve.kafka_source("bets", b.bootstrap, group="g"),
                        "fraud@champion", registry=store, key="user",
                        shadow="fraud@challenger",
                        canary={"model": "fraud@canary", "fraction": 0.25},
                        sinks=[serve.jsonl(out)], metrics_port=port,
                        reload={"poll_s": 0.2})
        run = job.start(str(tmp_path / "job.json"))
        try:
            wait_for(status_says(run, model="fraud@1"), 30, "start")
            produce(b.bootstrap, "bets", keys[:3000], values[:3000])
            wait_for(status_says(run, predictions=3000), 60, "chunk 1")
            # the shadow follows its alias too
            registry.promote("fraud", 4, alias="challenger", reason="d",
                             store=store)
            wait_for(lambda: run.metrics().get("sw_model_reloads_total"), 5,
                     "the shadow's swap")
            produce(b.bootstrap, "bets", keys[3000:], values[3000:])
            wait_for(status_says(run, predictions=6000), 60, "chunk 2")
        finally:
            run.stop()
        offline = {}
        for k in ("champ", "chall", "canary", "chall2"):
            nb = serve.score_stream(sw.learners.load(files[k]),
                                    sw.replay.kafka("bets", b.bootstrap,
                                                    schema=SPEC),
                                    key="user", emission="arrival")
            offline[k] = {(r.partition, r.offset): r.prediction
                          for r in nb.itertuples()}
    name = {"fraud@1": "champ", "fraud@2": "chall", "fraud@3": "canary",
            "fraud@4": "chall2"}
    live = lines_by_event(out)
    assert len(live) == 6000
    route, shadows = {}, set()
    for key, line in live.items():
        d = json.loads(line)
        assert d["model"] in ("fraud@1", "fraud@3")
        # a key always goes the same way
        assert route.setdefault(d["key"], d["model"]) == d["model"]
        want = offline[name[d["model"]]][key]
        assert np.float64(d["prediction"]).tobytes() == \
            np.float64(want).tobytes()
        s = d["shadow"]
        shadows.add(s["model"])
        assert np.float64(s["prediction"]).tobytes() == \
            np.float64(offline[name[s["model"]]][key]).tobytes()
    assert shadows == {"fraud@2", "fraud@4"}
    share = sum(m == "fraud@3" for m in route.values()) / len(route)
    assert 0.15 < share < 0.35, share      # 300 keys, a quarter expected


def test_a_control_topic_announcement_deploys_before_the_next_poll(tmp_path):
    store = str(tmp_path / "store")
    v1 = train_bundle(str(tmp_path / "v1.swm"), n=3000)
    v2 = train_bundle(str(tmp_path / "v2.swm"), n=4000)
    registry.register(v1, "m", store=store)
    registry.register(v2, "m", store=store)
    registry.promote("m", 1, reason="first", store=store)
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("t", 1)
        b.create_topic("sw-control", 1)
        control = {"topic": "sw-control", "bootstrap": b.bootstrap}
        # a poll once a minute: only the announcement can be this quick
        job = serve.Job(serve.kafka_source("t", b.bootstrap, group="g"),
                        "m@champion", registry=store, key="user",
                        sinks=[serve.jsonl(tmp_path / "o.jsonl")],
                        metrics_port=free_port(), reload={"poll_s": 60},
                        control=control)
        run = job.start(str(tmp_path / "job.json"))
        try:
            wait_for(status_says(run, model="m@1"), 30, "start")
            time.sleep(1.5)            # past the first poll
            t0 = time.time()
            registry.promote("m", 2, reason="announced", store=store,
                             control=control)
            # the control consumer joins its group within seconds and
            # reads from the earliest offset: nothing sent meanwhile is lost
            wait_for(status_says(run, model="m@2"), 15, "the announcement")
            took = time.time() - t0
        finally:
            log = run.stop()
        got = [json.loads(v) for bt in sw.replay.kafka("sw-control",
                                                       b.bootstrap)
               for v in bt["value"]]
    assert took < 15
    assert got == [{"action": "deploy", "alias": "champion",
                    "generation": 2, "model": "m", "version": 2}]
    assert "m@champion announced on sw-control" in log


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_retire_on_the_control_topic_stops_a_shadow_then_the_runner(
        kind, tmp_path, request):
    """registry.retire: the shadow's name retired, the runner stops
    scoring with it; the bundle's retired, the runner ends as on SIGTERM
    (exit 0, last checkpoint); both written "retired" to the deployment
    log. A retirement sent before a runner starts does not stop it."""
    store = make_store(kind, tmp_path, request)
    m = train_bundle(str(tmp_path / "m.swm"), n=3000)
    s = train_bundle(str(tmp_path / "s.swm"), n=4000)
    registry.register(m, "m", store=store)
    registry.register(s, "s", store=store)
    registry.promote("m", 1, reason="first", store=store)
    registry.promote("s", 1, reason="first", store=store)
    keys, values, _ = events(3000, seed=31)
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("t", 1)
        b.create_topic("sw-control", 1)
        control = {"topic": "sw-control", "bootstrap": b.bootstrap}

        def job(d):
            # the embedded broker holds a group's partitions for the
            # session timeout after a member left: 6 s, not 45
            return serve.Job(serve.kafka_source(
                                 "t", b.bootstrap, group=d,
                                 config={"session.timeout.ms": "6000",
                                         "heartbeat.interval.ms": "500"}),
                             "m@champion", registry=store, key="user",
                             shadow="s@champion",
                             sinks=[serve.jsonl(tmp_path / f"{d}.jsonl")],
                             checkpoint={"dir": str(tmp_path / d)},
                             metrics_port=free_port(), reload={"poll_s": 60},
                             control=control, runner_name=f"r-{d}")
        run = job("a").start(str(tmp_path / "a.json"))
        try:
            wait_for(status_says(run, model="m@1"), 30, "start")
            produce(b.bootstrap, "t", keys[:1000], values[:1000])
            wait_for(status_says(run, predictions=1000), 30, "1000")
            time.sleep(1.5)        # the control consumer holds its partition
            registry.retire("s", reason="compared enough", control=control)
            wait_for(lambda: "shadow s@1 retired" in open(run.log).read(),
                     15, "the shadow retired")
            produce(b.bootstrap, "t", keys[1000:2000], values[1000:2000])
            wait_for(status_says(run, predictions=2000), 30, "2000")
            registry.retire("m", reason="decommissioned", control=control)
            run.proc.wait(timeout=30)
        finally:
            log = run.stop()
        assert run.proc.returncode == 0, log
        assert "m@1 retired: stopping" in log
        lines = [json.loads(x) for x in open(tmp_path / "a.jsonl")]
        assert len(lines) == 2000
        assert all("shadow" in d for d in lines[:1000])
        assert not any("shadow" in d for d in lines[-500:])
        # the checkpoint holds all of it: a runner started later resumes
        # after event 2000, and the retirements sent before it started
        # do not stop it
        assert any(f.endswith(".swc") for f in os.listdir(tmp_path / "a"))
        again = job("a").start(str(tmp_path / "a2.json"))
        try:
            wait_for(status_says(again, model="m@1"), 30, "restart")
            produce(b.bootstrap, "t", keys[2000:], values[2000:])
            wait_for(status_says(again, predictions=3000), 60, "3000")
            assert again.alive()
        finally:
            log2 = again.stop()
        assert "retired" not in log2
    dep = registry.deployments("m", store=store)
    row = dep[dep["status"] == "retired"]
    assert len(row) == 1 and row["runner"].iloc[0] == "r-a"
    assert row["reason"].iloc[0] == "retired on sw-control: decommissioned"
    dep = registry.deployments("s", store=store)
    assert (dep["status"] == "retired").sum() == 1
    with pytest.raises(sw.InvalidArgument, match="control topic"):
        registry.retire("m")
