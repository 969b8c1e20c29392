"""streamwise: machine learning on event streams, one C core everywhere.

The estimators below run the C core (``streamwise._sw``) that the C-only
runner ``build/bin/sw-serve`` also links, so a model saved here scores the
same bits there. Errors are ``streamwise.Error`` subclasses that are also
the matching builtin (``ValueError``, ``OSError``...).
"""
from . import _sw
from ._sw import (Error, FormatError, IOError, InternalError, InvalidArgument,
                  NumericError, ShapeError, SourceError, StateError,
                  UnsupportedError)
from . import evaluate
from . import hdf5
from . import kafka
from . import replay
from . import serve
from .learners import (DataConversionWarning, NotFittedError,
                       PassiveAggressiveClassifier, PassiveAggressiveRegressor,
                       SCWClassifier, load)
from .recommend import ALS
from .gbdt import GBDTClassifier, GBDTRegressor
from .pipeline import Pipeline

__version__ = _sw.__version__

# streamwise.IOError stays out of `import *`: it would shadow the builtin
# (it is an OSError, so `except OSError` catches it anyway)
__all__ = [
    "PassiveAggressiveClassifier", "PassiveAggressiveRegressor",
    "SCWClassifier", "ALS", "GBDTClassifier", "GBDTRegressor", "Pipeline",
    "load", "inspect", "conf_table", "build_info",
    "evaluate", "Error", "FormatError", "InternalError",
    "InvalidArgument", "NumericError", "ShapeError", "SourceError",
    "StateError", "UnsupportedError", "NotFittedError",
    "DataConversionWarning",
]


def inspect(path):
    """A readable description of a .swm file (verified as load does)."""
    return _sw.inspect(str(path))


def conf_table():
    """The core's property table: (name, type, default, accepted, doc)."""
    return _sw.conf_props()


def build_info():
    """Version, build id and compiler of the linked core."""
    return _sw.build_info()
