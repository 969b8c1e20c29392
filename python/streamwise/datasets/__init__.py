"""Loaders, fetchers, readers and seeded generators of streamwise's data
sets.

Real data is read in place from a data directory and never committed: the
directory is the ``data_dir`` argument, else the ``STREAMWISE_DATA``
environment variable, else ``../shared/datasets`` next to the project (when
present). Fetchers (``fetch_banknote``, ``fetch_a8a``, and from the
publisher, under its terms, ``fetch_movielens_100k`` and ``fetch_lastfm``:
see ``fetch``) download a set once into ``~/streamwise_data`` and check
its SHA-256. Everything that must run
without them (the demo, the unit tests) uses the seeded generators here or
the tables Debian's ``python3-sklearn`` ships. This package is importable as
``streamwise.datasets``.
"""
from .libsvm import load_libsvm, write_libsvm
from .loaders import (DataNotFound, data_dir, load_a8a, load_airline,
                      load_banknote, load_bundled, load_lastfm,
                      load_movielens_100k, load_talkingdata)
from .convert import (AIRLINE_SCHEMA, MOVIELENS_SCHEMA, TALKINGDATA_SCHEMA,
                      airline_to_hdf5, csv_to_hdf5, hdf5_to_topic,
                      libsvm_to_hdf5, movielens_to_hdf5, talkingdata_to_hdf5,
                      topic_to_hdf5)
from .generators import dense_stream, hashed_stream, multiclass_stream
from .fetch import (fetch, fetch_a8a, fetch_banknote, fetch_lastfm,
                    fetch_movielens_100k)

__all__ = [
    "load_libsvm", "write_libsvm", "DataNotFound", "data_dir", "load_a8a",
    "load_banknote", "load_bundled", "load_movielens_100k", "load_lastfm", "dense_stream", "hashed_stream",
    "multiclass_stream", "load_talkingdata", "load_airline",
    "csv_to_hdf5", "libsvm_to_hdf5", "movielens_to_hdf5",
    "talkingdata_to_hdf5", "airline_to_hdf5", "hdf5_to_topic",
    "topic_to_hdf5", "TALKINGDATA_SCHEMA", "MOVIELENS_SCHEMA", "AIRLINE_SCHEMA",
    "fetch", "fetch_banknote", "fetch_a8a", "fetch_movielens_100k",
    "fetch_lastfm",
]
