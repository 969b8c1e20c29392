"""One property table: the C core, CONFIGURATION.md and the Python keyword
arguments must agree."""
import inspect
import os
import subprocess

import pytest

import streamwise as sw
from streamwise.learners import (PassiveAggressiveClassifier,
                                 PassiveAggressiveRegressor, SCWClassifier)

from conftest import ROOT


def test_configuration_md_is_current(serve):
    out = subprocess.run([serve, "--config-doc"], capture_output=True,
                         text=True, check=True).stdout
    with open(os.path.join(ROOT, "CONFIGURATION.md")) as f:
        assert f.read() == out, "CONFIGURATION.md is stale: run make conf-doc"


@pytest.mark.parametrize("cls", [PassiveAggressiveClassifier,
                                 PassiveAggressiveRegressor, SCWClassifier])
def test_python_defaults_are_the_tables(cls):
    table = {name: (typ, default) for name, typ, default, _, _ in
             sw.conf_table()}
    sig = inspect.signature(cls.__init__).parameters
    for arg, key in cls._conf_keys.items():
        typ, default = table[key]
        py = sig[arg].default
        if typ == "float":
            assert float(default) == py, (cls, arg)
        elif typ == "bool":
            assert (default == "true") == py, (cls, arg)
        else:
            assert default == py, (cls, arg)
    for key, value in cls._fixed.items():
        assert key in table


def test_every_property_documented():
    rows = sw.conf_table()
    assert len({r[0] for r in rows}) == len(rows)
    for name, typ, default, accepted, doc in rows:
        assert typ in {"float", "int", "choice", "bool"}
        assert accepted and len(doc) > 20, name
