"""The public Python API's type hints are consistent: mypy (Debian's
python3-mypy, installed by make deps) finds no error in the typed
modules. A module joins TYPED once its public functions are annotated."""
import os
import subprocess
import sys

from conftest import ROOT

TYPED = ["streamwise/_base.py", "streamwise/learners.py",
         "streamwise/gbdt.py", "streamwise/recommend.py",
         "streamwise/evaluate.py", "streamwise/pipeline.py",
         "streamwise/datasets/fetch.py", "streamwise/registry.py",
         "streamwise/kafka.py", "streamwise/track.py",
         "streamwise/replay.py", "streamwise/hdf5.py",
         "streamwise/serve.py", "streamwise/dask.py",
         "streamwise/store.py", "streamwise/plots.py", "streamwise/cli.py"]


def test_mypy_finds_no_error_in_the_typed_modules(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports",
         "--follow-imports=silent", "--cache-dir", str(tmp_path), *TYPED],
        cwd=os.path.join(ROOT, "python"), capture_output=True, text=True,
        timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_public_methods_of_the_typed_estimators_are_annotated():
    import inspect
    import streamwise as sw
    for cls in (sw.PassiveAggressiveClassifier, sw.SCWClassifier,
                sw.PassiveAggressiveRegressor, sw.GBDTClassifier,
                sw.GBDTRegressor, sw.ALS, sw.Pipeline):
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") and name != "__init__":
                continue
            if cls.__name__.startswith("GBDT") and name == "__init__":
                continue          # LightGBM's 23 parameters: documented
            hints = fn.__annotations__
            assert "return" in hints, f"{cls.__name__}.{name}"


def test_public_functions_of_the_typed_modules_are_annotated():
    import inspect
    import importlib
    from streamwise import (cli, evaluate, hdf5, kafka, plots, registry,
                            replay, serve, store, track)
    fetch = importlib.import_module("streamwise.datasets.fetch")
    for mod in (registry, evaluate, fetch, kafka, track, replay, hdf5,
                serve, store, plots):
        for name in mod.__all__:
            fn = getattr(mod, name)
            if inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                assert "return" in fn.__annotations__, f"{mod.__name__}.{name}"
            if inspect.isclass(fn) and fn.__module__ == mod.__name__ and \
                    mod is not store:   # its Store classes: internal
                for m, f in inspect.getmembers(fn, inspect.isfunction):
                    if not m.startswith("_") or m in ("__init__",
                                                      "__enter__"):
                        assert "return" in f.__annotations__, \
                            f"{mod.__name__}.{name}.{m}"
    assert "return" in cli.main.__annotations__
