"""The model registry: immutable versions, aliases, the append-only
promotion log, and the C lookup the runner uses."""
import datetime as dt
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import streamwise as sw
from streamwise import registry, track

from conftest import STORE_KINDS, make_store, raw_errors, raw_sql, ROOT, separable


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    """Every test here runs on both stores."""
    return make_store(request.param, tmp_path, request)


def model_file(tmp_path, rng, name, C=1.0):
    X, y = separable(rng, n=100, d=4)
    est = sw.PassiveAggressiveClassifier(C=C).fit(X, y)
    path = tmp_path / f"{name}.swm"
    est.save(path)
    return str(path), est, X


def test_versions_are_immutable(tmp_path, rng, store):
    a, _, _ = model_file(tmp_path, rng, "a")
    b, _, _ = model_file(tmp_path, rng, "b", C=0.1)
    assert registry.register(a, "m", store=store) == 1
    assert registry.register(a, "m", store=store) == 1     # same bytes
    assert registry.register(b, "m", store=store) == 2
    assert registry.register(b, "other", store=store) == 1
    v1 = registry.resolve("m@1", store=store)
    assert open(v1.path, "rb").read() == open(a, "rb").read()
    assert not os.access(v1.path, os.W_OK) or os.geteuid() == 0
    assert oct(os.stat(v1.path).st_mode & 0o777) == "0o444"
    with pytest.raises(raw_errors(), match="immutable"):
        raw_sql(store, "UPDATE model_versions SET sha256 = 'x'")
    assert registry.resolve("m", store=store).version == 2   # latest


def test_register_refuses_bad_files(tmp_path, rng, store):
    a, _, _ = model_file(tmp_path, rng, "a")
    bad = tmp_path / "bad.swm"
    blob = bytearray(open(a, "rb").read())
    blob[100] ^= 1
    bad.write_bytes(bytes(blob))
    with pytest.raises(sw.FormatError):
        registry.register(str(bad), "m", store=store)
    with pytest.raises(sw.IOError):
        registry.register(str(tmp_path / "none.swm"), "m", store=store)
    with pytest.raises(sw.InvalidArgument, match="model name"):
        registry.register(a, "bad name!", store=store)
    assert len(registry.list_models(store=store)) == 0


def test_promotions_are_logged_and_append_only(tmp_path, rng, store):
    a, _, _ = model_file(tmp_path, rng, "a")
    b, _, _ = model_file(tmp_path, rng, "b", C=0.1)
    v1 = registry.register(a, "m", store=store)
    v2 = registry.register(b, "m", store=store)
    with pytest.raises(sw.InvalidArgument, match="reason"):
        registry.promote("m", v1, store=store)
    with pytest.raises(sw.InvalidArgument, match="no version 9"):
        registry.promote("m", 9, reason="x", store=store)
    g1 = registry.promote("m", v1, reason="first", evidence={"acc": 0.9},
                          who="alice", store=store)
    t_between = time.time()
    time.sleep(0.05)
    g2 = registry.promote("m", v2, reason="better on the same replay",
                          evidence={"acc": [0.9, 0.95]}, who="bob",
                          store=store)
    g3 = registry.promote("m", v1, alias="shadow", reason="keep watching",
                          store=store)
    assert g1 < g2 < g3
    h = registry.history("m", store=store)
    assert list(h["new_version"]) == [1, 2, 1]
    assert h["old_version"].iloc[1] == 1 and np.isnan(h["old_version"].iloc[0])
    assert list(h["who"][:2]) == ["alice", "bob"]
    assert h["evidence"].iloc[1] == {"acc": [0.9, 0.95]}
    assert registry.resolve("m@champion", store=store).version == 2
    assert registry.resolve("m@shadow", store=store).version == 1
    assert registry.resolve("m@champion", at=t_between,
                            store=store).version == 1
    assert registry.resolve("m@champion", at=dt.datetime.now(),
                            store=store).version == 2
    sqls = ["UPDATE promotions SET reason = 'rewritten'",
            "DELETE FROM promotions"]
    if store.startswith("postgresql:"):
        sqls.append("TRUNCATE promotions")
    for sql in sqls:
        with pytest.raises(raw_errors(), match="append-only"):
            raw_sql(store, sql)
    assert len(registry.history("m", store=store)) == 3


def test_run_models_register_by_uri(rng, store):
    X, y = separable(rng, n=80, d=3)
    with track.run(store=store) as r:
        r.log_model(sw.SCWClassifier().fit(X, y), "scw")
    v = registry.register(f"runs:/{r.id}/scw", "from-run", store=store)
    assert registry.versions("from-run", store=store)["source_run"][0] == r.id
    assert v == 1


def test_c_lookup_agrees_with_python(tmp_path, rng, store, serve):
    a, est, X = model_file(tmp_path, rng, "a")
    b, _, _ = model_file(tmp_path, rng, "b", C=0.1)
    registry.register(a, "clf", store=store)
    registry.register(b, "clf", store=store)
    registry.promote("clf", 1, reason="ok", store=store)
    for ref in ("clf@champion", "clf@2", "clf"):
        py = registry.resolve(ref, store=store)
        c = sw._sw.registry_resolve(store, ref)
        assert tuple(c) == tuple(py), ref
        out = subprocess.run([serve, "--registry", store, "--resolve", ref],
                             capture_output=True, text=True)
        assert out.stdout.split() == [py.path, py.sha256, str(py.version)]
    # the runner scores the champion
    rows = "".join(",".join(repr(float(v)) for v in r) + "\n" for r in X)
    out = subprocess.run([serve, "--registry", store, "clf@champion"],
                         input=rows, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "version 1" in out.stderr
    got = np.array([float(v) for v in out.stdout.split()])
    assert got.tobytes() == est.decision_function(X).tobytes()
    # errors
    # a mistyped reference is told what there is
    with pytest.raises(sw.InvalidArgument,
                       match=r"names no model version; 'clf' has versions "
                             r"1\.\.2 and aliases champion -> 1"):
        sw._sw.registry_resolve(store, "clf@challenger")
    with pytest.raises(sw.InvalidArgument,
                       match=r"no model 'cfl'; its models: clf"):
        sw._sw.registry_resolve(store, "cfl@champion")
    out = subprocess.run([serve, "--registry", store, "clf@champoin"],
                         input="", capture_output=True, text=True)
    assert out.returncode != 0 and "aliases champion -> 1" in out.stderr
    out = subprocess.run([serve, "--frobnicate", "x.swm"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and \
        "unknown option --frobnicate" in out.stderr
    out = subprocess.run([serve, "--format"], capture_output=True, text=True)
    assert out.returncode == 2 and "--format needs a value" in out.stderr
    with pytest.raises(sw.InvalidArgument, match="not allowed"):
        sw._sw.registry_resolve(store, "c l f@x")
    with pytest.raises(sw.IOError):
        sw._sw.registry_resolve(str(tmp_path / "nowhere"), "clf")
    # a registered file changed behind the registry's back
    path = registry.resolve("clf@champion", store=store).path
    os.chmod(path, 0o644)
    blob = bytearray(open(path, "rb").read())
    blob[-1] ^= 1
    open(path, "wb").write(bytes(blob))
    with pytest.raises(sw.FormatError, match="changed after registration"):
        sw._sw.registry_resolve(store, "clf@champion")
    with pytest.raises(sw.FormatError, match="changed after registration"):
        registry.resolve("clf@champion", store=store)
    out = subprocess.run([serve, "--registry", store, "clf@champion"],
                         input=rows, capture_output=True, text=True)
    assert out.returncode == 1 and "changed after registration" in out.stderr


def test_command_line(tmp_path, rng, store):
    a, _, _ = model_file(tmp_path, rng, "a")
    with track.run(experiment="cli", name="one", params={"C": 1},
                   store=store) as r:
        r.log_metric("acc", 0.93)
    registry.register(a, "clf", store=store)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "streamwise", *args,
                               "--store", store], capture_output=True,
                              text=True, env=env)

    out = cli("runs", "list", "--filter", "metrics.acc > 0.9")
    assert out.returncode == 0 and "one" in out.stdout and \
        "0.93" in out.stdout
    assert r.id in cli("runs", "show", r.id[:8]).stdout
    assert "metrics.acc (last)" in cli("runs", "compare", r.id).stdout
    out = cli("models", "promote", "clf", "1", "--reason", "cli test",
              "--evidence", '{"acc": 0.93}')
    assert out.returncode == 0 and "generation 1" in out.stdout
    hist = cli("models", "history", "clf").stdout
    assert "cli test" in hist and '{"acc": 0.93}' in hist
    assert "champion=1" in cli("models", "list").stdout
    out = cli("runs", "list", "--filter", "metrics.acc >")
    assert out.returncode == 1 and "position 13" in out.stderr
