"""Serving: bundles, jobs for the C runner, and backtests.

A *bundle* is a model file that carries the feature pipeline its model was
trained on (spec, event schema, privacy settings without the secret, the
columns the model reads) and golden events: raw events replayed from empty
state whose exact predictions every load checks again::

    p = streamwise.Pipeline(spec, emission="arrival")
    out = p.push(events)
    X = streamwise.serve.features(out, inputs)       # what the model reads
    clf = streamwise.GBDTClassifier().fit(X, y)
    clf.save("bonus.swm", pipeline=p, inputs=inputs)
    streamwise.serve.score(clf, p, out)               # the runner's bits

A *job* is what ``build/bin/sw-serve run JOB`` runs without Python: a
source (Kafka, a topic slice or an HDF5 event file), the bundle (a path or
a registry reference ``name@alias``), the emission mode, sinks, dead
letters and checkpoints. ``Job(...).save(path)`` writes one,
``.start()`` runs it and ``.backtest(...)`` runs it over recorded events
and returns the predictions as a DataFrame. See docs/runner.md.
"""
import json
import os

import numpy as np

from . import _sw

__all__ = ["features", "score", "attach", "Job", "RunningJob",
           "runner_program"]

_GOLDEN_EVENTS = 64


def _core_of(model):
    """The core model of an estimator (or a core model as is)."""
    if hasattr(model, "_fitted"):
        return model._fitted()
    return model


def features(out, inputs=None, sparse=None):
    """The matrix a bundle's model reads from a PipelineOutput: the dense
    columns named in inputs (default: all), then, with sparse (default:
    when the pipeline hashes), the hashed block, as a scipy CSR matrix;
    without it a float64 array. Train on this; score with score()."""
    cols = list(out.columns)
    inputs = cols if inputs is None else list(inputs)
    missing = [c for c in inputs if c not in cols]
    if missing:
        raise _sw.InvalidArgument(f"inputs {missing} are not dense columns "
                                  f"of the pipeline ({cols})")
    X = out.dense[:, [cols.index(c) for c in inputs]]
    if sparse is None:
        sparse = out.sparse is not None
    if not sparse:
        return X
    if out.sparse is None:
        raise _sw.InvalidArgument("sparse=True, but the pipeline has no "
                                  "hash feature")
    import scipy.sparse as sp
    return sp.hstack([sp.csr_matrix(X), out.sparse], format="csr")


def attach(model, pipeline, inputs=None, sparse=None, golden_events=None):
    """Make model (an estimator or a core model) a bundle of pipeline:
    inputs are the dense columns it reads (default: all), sparse whether
    the hashed block follows them (default: when the model's width says
    so). golden_events: a batch (dict of arrays, DataFrame) of raw events;
    default: up to 64 valid events of the first batch the pipeline was
    pushed."""
    m = _core_of(model)
    inputs = list(pipeline.columns if inputs is None else inputs)
    if sparse is None:
        sparse = bool(pipeline.sparse_dims) and \
            m.n_features == len(inputs) + pipeline.sparse_dims
    m.set_pipeline(pipeline._core, [str(c) for c in inputs], bool(sparse))
    if golden_events is not None:
        encoded, _, _ = pipeline._encode(golden_events)
    else:
        encoded = _valid_head(pipeline._first)
    if encoded:
        m.set_golden_events(encoded)
    return model


def _valid_head(encoded):
    """The first events of an encoded batch that no column marks bad."""
    if not encoded:
        return None
    n = len(encoded[0][2])
    ok = np.ones(n, bool)
    for _, _, _, _, bad in encoded:
        if bad is not None:
            ok &= np.asarray(bad) == 0
    keep = np.flatnonzero(ok)[:_GOLDEN_EVENTS]
    if not len(keep):
        return None
    return [(name, kind, np.ascontiguousarray(np.asarray(a)[keep]), width,
             None) for name, kind, a, width, _ in encoded]


def score(model, pipeline, out):
    """The bundle's predictions for the rows of a PipelineOutput, computed
    by the core function the runner calls (sw_model_predict_features):
    the same bits the runner writes. Binary GBDT: the probability of class
    1; linear: the decision value; multiclass: one column per class."""
    m = _core_of(model)
    return m.predict_features(pipeline._core, out.dense, out.hashed)


# ---------------------------------------------------------------------------
# Jobs for the C runner
# ---------------------------------------------------------------------------

def runner_program():
    """The sw-serve executable: $STREAMWISE_SERVE, the build in place, or
    one on PATH."""
    import shutil
    env = os.environ.get("STREAMWISE_SERVE")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.normpath(os.path.join(here, "..", "..", "build", "bin",
                                          "sw-serve"))
    if os.path.exists(built):
        return built
    found = shutil.which("sw-serve")
    if found:
        return found
    raise _sw.UnsupportedError("sw-serve not found: run make (it builds "
                               "build/bin/sw-serve) or set STREAMWISE_SERVE")
