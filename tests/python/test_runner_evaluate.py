"""Live evaluation in sw-serve run: every label join pair scored by the
main model (before it learns the pair) and by the shadow, folded into
accuracy, log-loss, AUC and drift, and logged to the tracking store as one
run per model served, where streamwise.track reads it. The figures are
checked against evaluate.prequential, evaluate.roc_auc and the drift
formula computed here. Embedded broker, loopback, bounded in time."""
import numpy as np
import pytest

import streamwise as sw
from streamwise import registry, serve, track

from conftest import STORE_KINDS, make_store
from test_runner_learn import (bundle, data, messages, reenact, refusal,
                               run_to_end)
from test_runner_live import free_port, wait_for

WINDOW = 500


def psi(base, now):
    """The population stability index of now against the deciles of
    base, proportions floored at 1e-4 (docs/runner.md)."""
    s = np.sort(base)
    edges = s[[(len(s) * (b + 1)) // 10 for b in range(9)]]

    def frac(x):
        return np.bincount(np.searchsorted(edges, x, side="left"),
                           minlength=10) / len(x)
    a, b = np.maximum(frac(now), 1e-4), np.maximum(frac(base), 1e-4)
    return float(np.sum((a - b) * np.log(a / b)))


def runs_of(store):
    df = track.search_runs(experiment="deployments", store=store)
    return {r["tags.streamwise.slot"]: r for _, r in df.iterrows()}


def history(store, run_id, key):
    return track.open_run(run_id, store=store).metric_history(key)["value"]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_live_evaluation_of_a_learner_and_its_shadow_goes_to_the_store(
        tmp_path, kind, request):
    X, y, _ = data()
    store = make_store(kind, tmp_path, request)
    model = bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    # the shadow's file carries the deciles of its scores on training rows:
    # its drift is measured against them, the main model's against its
    # first window
    shadow = sw.PassiveAggressiveClassifier().partial_fit(
        X[:10], y[:10], classes=[0, 1])
    shadow.save(tmp_path / "s.swm", reference=X[:200],
                pipeline=sw.Pipeline(bundle.__globals__["SPEC"],
                                     emission="watermark"))
    assert registry.register(str(tmp_path / "b.swm"), "notes",
                             store=store) == 1
    assert registry.register(str(tmp_path / "s.swm"), "notes-pa",
                             store=store) == 1
    run_to_end(tmp_path, X, y, "notes@1", registry=store, learn=True,
               shadow="notes-pa@1", runner_name="live-1",
               evaluate={"every_s": 0.05, "window": WINDOW},
               sinks=[serve.jsonl(tmp_path / "o.jsonl")])
    runs = runs_of(store)
    assert set(runs) == {"main", "shadow"}
    main, sh = runs["main"], runs["shadow"]
    assert main["status"] == sh["status"] == "FINISHED"
    assert main["tags.streamwise.model"] == "notes@1"
    assert main["tags.streamwise.model_version"] == "1"
    assert main["tags.streamwise.runner"] == "live-1"
    assert main["tags.streamwise.learning"] == "true"
    assert sh["tags.streamwise.learning"] == "false"
    assert main["tags.streamwise.drift_baseline"] == "first window"
    assert sh["tags.streamwise.drift_baseline"] == "training scores"

    # the learner: what evaluate.prequential says on the same order, each
    # pair scored before it is learned
    fresh = sw.SCWClassifier().partial_fit(X[:10], y[:10], classes=[0, 1])
    pre = sw.evaluate.prequential(fresh, X, y,
                                  metrics=["accuracy", "log_loss"])
    scores = reenact(model, X, y)
    acc = history(store, main["run_id"], "live_accuracy")
    assert acc.iloc[-1] == pre["accuracy"][-1]
    assert history(store, main["run_id"], "live_log_loss").iloc[-1] == \
        pytest.approx(pre["log_loss"][-1], rel=1e-12)
    assert history(store, main["run_id"], "live_pairs").iloc[-1] == len(y)
    # AUC and drift cover the last WINDOW pairs; drift against the first
    assert history(store, main["run_id"], "live_auc").iloc[-1] == \
        pytest.approx(sw.evaluate.roc_auc(y[-WINDOW:] == 1,
                                          scores[-WINDOW:]), rel=1e-12)
    assert history(store, main["run_id"], "live_psi").iloc[-1] == \
        pytest.approx(psi(scores[:WINDOW], scores[-WINDOW:]), rel=1e-9)

    # the shadow learns nothing: its figures are a fixed model's
    d = shadow.decision_function(X)
    assert history(store, sh["run_id"], "live_accuracy").iloc[-1] == \
        np.mean((d > 0) == (y == 1))
    assert history(store, sh["run_id"], "live_auc").iloc[-1] == \
        pytest.approx(sw.evaluate.roc_auc(y[-WINDOW:] == 1, d[-WINDOW:]),
                      rel=1e-12)
    assert history(store, sh["run_id"], "live_psi").iloc[-1] == \
        pytest.approx(psi(shadow.decision_function(X[:200]), d[-WINDOW:]),
                      rel=1e-9)
    # a notebook compares them on the same events
    assert acc.iloc[-1] > history(store, sh["run_id"],
                                  "live_accuracy").iloc[-1] - 0.2


def test_evaluation_needs_a_label_join(tmp_path):
    X, y, _ = data()
    spec = dict(bundle.__globals__["SPEC"])
    del spec["label_join"]
    p = sw.Pipeline(spec, emission="watermark")
    sw.SCWClassifier().partial_fit(X[:10], y[:10], classes=[0, 1]).save(
        tmp_path / "nj.swm", pipeline=p)
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("bets", 1)
        said = refusal(tmp_path, serve.Job(
            serve.kafka_source("bets", b.bootstrap),
            str(tmp_path / "nj.swm"), emission="watermark", evaluate=True))
    assert "job: evaluate: the bundle's pipeline has no label_join" in \
        said, said


def test_a_swapped_shadow_is_evaluated_in_a_run_of_its_own(tmp_path):
    """The shadow follows notes-pa@challenger; when it moves to version 2
    mid-stream, version 1's run ends FINISHED with the pairs it scored and
    version 2 is evaluated afresh: each run's accuracy is its own model's
    over its own pairs, and together they cover every pair once."""
    X, y, _ = data()
    store = str(tmp_path / "store")
    bundle(str(tmp_path / "b.swm"), sw.SCWClassifier, X, y)
    s1 = bundle(str(tmp_path / "s1.swm"), sw.PassiveAggressiveClassifier,
                X, y)
    s2 = sw.PassiveAggressiveClassifier().partial_fit(X[:300], y[:300],
                                                      classes=[0, 1])
    s2.save(tmp_path / "s2.swm",
            pipeline=sw.Pipeline(bundle.__globals__["SPEC"],
                                 emission="watermark"))
    registry.register(str(tmp_path / "b.swm"), "notes", store=store)
    for f in ("s1.swm", "s2.swm"):
        registry.register(str(tmp_path / f), "notes-pa", store=store)
    registry.promote("notes-pa", 1, alias="challenger", reason="first",
                     store=store)
    msgs = messages(X, y)
    half = 2 * (len(y) // 2)                   # a bet and its label each
    with sw.kafka.local_broker(partitions=1) as b:
        b.create_topic("bets", 1)
        job = serve.Job(serve.kafka_source("bets", b.bootstrap, group="ev"),
                        "notes@1", registry=store, emission="watermark",
                        key="id", shadow="notes-pa@challenger",
                        reload={"poll_s": 0.05},
                        evaluate={"every_s": 0.05, "window": WINDOW},
                        metrics_port=free_port(), log_every_s=0)
        run = job.start(str(tmp_path / "job.json"))
        with sw.kafka.Sink("bets", b.bootstrap) as s:
            s.send(msgs[:half], partition=0)
        wait_for(lambda: _live(run, "shadow") >= len(y) // 2 - 1, 60,
                 "the first half's pairs")
        registry.promote("notes-pa", 2, alias="challenger",
                         reason="more data", store=store)
        wait_for(lambda: _live(run, "shadow") == 0, 30, "the swap")
        with sw.kafka.Sink("bets", b.bootstrap) as s:
            s.send(msgs[half:], partition=0)
        wait_for(lambda: _live(run, "main") >= len(y) - 1, 60,
                 "every pair")
        run.stop()
    df = track.search_runs(experiment="deployments", store=store)
    sh = df[df["tags.streamwise.slot"] == "shadow"]
    by_version = {r["tags.streamwise.model_version"]: r
                  for _, r in sh.iterrows()}
    assert set(by_version) == {"1", "2"}
    assert set(sh["status"]) == {"FINISHED"}
    n1 = int(history(store, by_version["1"]["run_id"],
                     "live_pairs").iloc[-1])
    n2 = int(history(store, by_version["2"]["run_id"],
                     "live_pairs").iloc[-1])
    # the last pair waits for an event past it (a stop does not flush)
    assert len(y) - 1 <= n1 + n2 <= len(y) and n1 >= len(y) // 2 - 1
    for model, run_id, sl in [(s1, by_version["1"]["run_id"], slice(0, n1)),
                              (s2, by_version["2"]["run_id"],
                               slice(n1, n1 + n2))]:
        d = model.decision_function(X[sl])
        assert history(store, run_id, "live_accuracy").iloc[-1] == \
            np.mean((d > 0) == (y[sl] == 1))


def _live(run, slot):
    """The live pairs of a slot, as /metrics says (0 before any)."""
    try:
        return run.metrics().get(f'sw_live_pairs{{slot="{slot}"}}', 0)
    except OSError:
        return 0


@pytest.mark.parametrize("make", [
    lambda X, y: sw.SCWClassifier().partial_fit(X[:50], y[:50],
                                                classes=[0, 1]),
    lambda X, y: sw.GBDTClassifier(n_estimators=5).fit(X, y)],
    ids=["scw", "gbdt"])
def test_a_saved_reference_is_the_deciles_of_the_models_scores(tmp_path,
                                                               make):
    import json
    X, y, _ = data()
    m = make(X, y)
    m.save(tmp_path / "m.swm", reference=X[:400])
    ref = json.loads(sw._sw.load(str(tmp_path / "m.swm")).metadata)[
        "score_reference"]
    # the outputs the runner scores with: a decision value, a probability
    s = np.sort(m.decision_function(X[:400])
                if not isinstance(m, sw.GBDTClassifier)
                else m.predict_proba(X[:400])[:, 1])
    assert ref["edges"] == [float(s[(400 * (b + 1)) // 10]) for b in range(9)]
    assert sum(ref["fractions"]) == pytest.approx(1.0)
    assert ref["rows"] == 400
    with pytest.raises(sw.InvalidArgument, match="reference: 5 rows"):
        m.save(tmp_path / "m.swm", reference=X[:5])


def test_a_gbdt_is_evaluated_on_its_probabilities(tmp_path):
    """A GBDT classifier's outputs are probabilities, not decision
    values: its accuracy and log-loss are taken from them as they are."""
    X, y, _ = data()
    store = str(tmp_path / "store")
    g = sw.GBDTClassifier(n_estimators=5).fit(X[:300], y[:300])
    g.save(tmp_path / "g.swm", reference=X[:300],
           pipeline=sw.Pipeline(bundle.__globals__["SPEC"],
                                emission="watermark"))
    registry.register(str(tmp_path / "g.swm"), "notes-gbdt", store=store)
    run_to_end(tmp_path, X, y, "notes-gbdt@1", registry=store,
               evaluate={"every_s": 1, "window": WINDOW},
               sinks=[serve.jsonl(tmp_path / "o.jsonl")])
    main = runs_of(store)["main"]
    p = g.predict_proba(X)[:, 1]
    clip = np.clip(np.where(y == 1, p, 1 - p), 1e-15, 1 - 1e-15)
    assert history(store, main["run_id"], "live_accuracy").iloc[-1] == \
        np.mean((p > 0.5) == (y == 1))
    assert history(store, main["run_id"], "live_log_loss").iloc[-1] == \
        pytest.approx(-np.mean(np.log(clip)), rel=1e-12)
    assert history(store, main["run_id"], "live_psi").iloc[-1] == \
        pytest.approx(psi(g.predict_proba(X[:300])[:, 1], p[-WINDOW:]),
                      rel=1e-9)


def test_the_canary_is_evaluated_on_the_pairs_of_its_keys(tmp_path):
    """A canary scores a key-hashed share of the events; each pair goes to
    the model that scored its key (its label is keyed like its bet): the
    main model's and the canary's figures are each over their own bets, as
    the outputs name them."""
    import json
    X, y, _ = data()
    store = str(tmp_path / "store")
    spec = sw.Pipeline(bundle.__globals__["SPEC"], emission="watermark")
    models = {}
    for name, cls, n in [("main", sw.SCWClassifier, 10),
                         ("canary", sw.PassiveAggressiveClassifier, 300)]:
        models[name] = cls().partial_fit(X[:n], y[:n], classes=[0, 1])
        models[name].save(tmp_path / f"{name}.swm", pipeline=spec)
        registry.register(str(tmp_path / f"{name}.swm"), f"notes-{name}",
                          store=store)
    out = tmp_path / "o.jsonl"
    run_to_end(tmp_path, X, y, "notes-main@1", registry=store,
               canary={"model": "notes-canary@1", "fraction": 0.3},
               evaluate={"every_s": 60, "window": WINDOW},
               sinks=[serve.jsonl(out)])
    by = {}
    for line in open(out):
        d = json.loads(line)
        if d["offset"] % 2 == 0:                  # the bets
            by[d["offset"] // 2] = d["model"]
    canary = np.array([by[i] == "notes-canary@1" for i in range(len(y))])
    assert 0.2 < canary.mean() < 0.4
    runs = runs_of(store)
    assert set(runs) == {"main", "canary"}
    for name, mine in (("main", ~canary), ("canary", canary)):
        d = models[name].decision_function(X[mine])
        assert history(store, runs[name]["run_id"],
                       "live_pairs").iloc[-1] == mine.sum()
        assert history(store, runs[name]["run_id"],
                       "live_accuracy").iloc[-1] == \
            np.mean((d > 0) == (y[mine] == 1))
