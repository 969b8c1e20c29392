"""Loaders, readers and seeded generators of streamwise's data sets.

Real data is read in place from a data directory and never committed nor
downloaded: the directory is the ``data_dir`` argument, else the
``STREAMWISE_DATA`` environment variable, else ``../shared/datasets`` next to
the project (when present). Everything that must run without it (the demo,
the unit tests) uses the seeded generators here or the tables Debian's
``python3-sklearn`` ships. This package is importable as
``streamwise.datasets``.
"""
from .libsvm import load_libsvm, write_libsvm
from .loaders import (DataNotFound, data_dir, load_a8a, load_banknote,
                      load_bundled, load_lastfm, load_movielens_100k)
from .generators import dense_stream, hashed_stream, multiclass_stream

__all__ = [
    "load_libsvm", "write_libsvm", "DataNotFound", "data_dir", "load_a8a",
    "load_banknote", "load_bundled", "load_movielens_100k", "load_lastfm", "dense_stream", "hashed_stream",
    "multiclass_stream",
]
