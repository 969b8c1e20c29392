"""Loaders of the real data sets, read in place from a data directory."""
import csv
import os

import numpy as np

from .libsvm import load_libsvm

__all__ = ["DataNotFound", "data_dir", "load_banknote", "load_a8a",
           "load_bundled", "load_movielens_100k", "load_lastfm",
           "load_talkingdata", "load_airline"]

_HERE = os.path.dirname(os.path.realpath(__file__))


class DataNotFound(FileNotFoundError):
    """A data set is not in the data directory (nothing is downloaded)."""


def data_dir(path=None):
    """The data directory: ``path``, else $STREAMWISE_DATA, else
    ``../shared/datasets`` beside the project or the working directory."""
    candidates = [path, os.environ.get("STREAMWISE_DATA"),
                  # python/streamwise/datasets -> the project's parent
                  os.path.join(_HERE, "..", "..", "..", "..", "shared",
                               "datasets"),
                  os.path.join(os.getcwd(), "..", "shared", "datasets")]
    for c in candidates:
        if c and os.path.isdir(c):
            return os.path.realpath(c)
    raise DataNotFound(
        "no data directory: pass data_dir=..., set STREAMWISE_DATA, or put "
        "the data sets in ../shared/datasets (streamwise never downloads)")


def _file(data, *parts):
    p = os.path.join(data_dir(data), *parts)
    if not os.path.exists(p):
        raise DataNotFound(f"{p} is missing")
    return p


def load_banknote(data=None, shuffle=True, seed=0):
    """UCI banknote authentication: X (1372, 4) float64, y int64 in {0, 1}.

    The file lists all class-0 rows before the class-1 rows, so by default
    the rows are shuffled with ``numpy.random.default_rng(seed)``: an online
    learner would otherwise see one class only for 762 rows.
    """
    rows = []
    with open(_file(data, "banknote", "data_banknote_authentication.txt")) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append([float(v) for v in line.split(",")])
    arr = np.asarray(rows)
    X, y = arr[:, :4].copy(), arr[:, 4].astype(np.int64)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(y))
        X, y = X[order], y[order]
    return X, y


def load_a8a(data=None):
    """LIBSVM a8a (UCI Adult, Platt's binarisation): X CSR (22696, 123)
    binary, y in {-1, +1}, in file order."""
    return load_libsvm(_file(data, "libsvm-a8a", "a8a.gz"), n_features=123)


_BUNDLED = {"breast_cancer": "breast_cancer.csv", "iris": "iris.csv",
            "wine": "wine_data.csv"}


def load_bundled(name, data=None):
    """A small table scikit-learn ships (breast_cancer, iris, wine, digits):
    from Debian's python3-sklearn when installed, else from the data
    directory's sklearn-bundled copy. Returns (X float64, y int64)."""
    try:
        import sklearn.datasets as skd
        loader = getattr(skd, f"load_{name}")
        X, y = loader(return_X_y=True)
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    except ImportError:
        pass
    if name == "digits":
        arr = np.loadtxt(_file(data, "sklearn-bundled", "digits.csv.gz"),
                         delimiter=",")
        return arr[:, :-1], arr[:, -1].astype(np.int64)
    if name not in _BUNDLED:
        raise DataNotFound(f"no bundled data set {name!r}")
    with open(_file(data, "sklearn-bundled", _BUNDLED[name])) as f:
        rows = list(csv.reader(f))[1:]
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, :-1], arr[:, -1].astype(np.int64)


def load_movielens_100k(data=None):
    """MovieLens 100K: (ratings, titles). ratings is a scipy CSR matrix of
    943 users x 1682 movies holding the 1-5 ratings (ids shifted to start
    at 0); titles[i] is movie i's title."""
    import gzip

    import scipy.sparse as sp
    arr = np.loadtxt(_file(data, "movielens-100k", "u.data.gz"),
                     dtype=np.int64)
    users, items, ratings = arr[:, 0] - 1, arr[:, 1] - 1, arr[:, 2]
    m = sp.csr_matrix((ratings.astype(np.float32), (users, items)),
                      shape=(users.max() + 1, items.max() + 1))
    titles = [""] * m.shape[1]
    with gzip.open(_file(data, "movielens-100k", "u.item.gz"), "rt",
                   encoding="latin-1") as f:
        for line in f:
            parts = line.split("|")
            if len(parts) > 1:
                titles[int(parts[0]) - 1] = parts[1]
    return m, titles


def load_lastfm(data=None):
    """Last.fm hetrec-2011 (2k users): (plays, user_ids, artist_ids) where
    plays is a CSR users x artists of play counts, and the id arrays map
    rows and columns back to the file's ids."""
    import scipy.sparse as sp
    arr = np.loadtxt(_file(data, "lastfm-hetrec2011-2k", "user_artists.dat.gz"),
                     dtype=np.int64, skiprows=1)
    user_ids, u = np.unique(arr[:, 0], return_inverse=True)
    artist_ids, a = np.unique(arr[:, 1], return_inverse=True)
    plays = sp.csr_matrix((arr[:, 2].astype(np.float32), (u, a)),
                          shape=(len(user_ids), len(artist_ids)))
    return plays, user_ids, artist_ids


def _utc_seconds(text):
    """'2017-11-07 09:30:38' strings (UTC) as int64 seconds; '' is -1."""
    a = np.asarray(text, dtype=object)
    out = np.full(len(a), -1, dtype=np.int64)
    has = np.array([bool(v) for v in a.tolist()], dtype=bool)
    if has.any():
        t = np.array([v.replace(" ", "T") for v in a[has].tolist()],
                     dtype="datetime64[s]")
        out[has] = t.astype(np.int64)
    return out


def load_talkingdata(data=None):
    """The TalkingData AdTracking click sample (100,000 clicks), in
    click_time order (stable on file order): a dict of arrays ip, app,
    device, os, channel (int64), ts (click_time, int64 seconds since 1970,
    UTC), attributed_ts (likewise, -1 without a download), is_attributed
    (int8) and row (the line in the file, 0-based)."""
    import gzip
    path = _file(data, "talkingdata-adtracking-sample", "train_sample.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))
    head, rows = rows[0], rows[1:]
    col = {h: [r[i] for r in rows] for i, h in enumerate(head)}
    out = {k: np.array(col[k], dtype=np.int64)
           for k in ("ip", "app", "device", "os", "channel")}
    out["ts"] = _utc_seconds(col["click_time"])
    out["attributed_ts"] = _utc_seconds(col["attributed_time"])
    out["is_attributed"] = np.array(col["is_attributed"], dtype=np.int8)
    out["row"] = np.arange(len(rows), dtype=np.int64)
    order = np.argsort(out["ts"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def load_airline(data=None):
    """The 100,000 airline departures (szilard/benchm-ml schema), in file
    order: Month, DayofMonth, DayOfWeek (the file's "c-8" codes as int8),
    DepTime, Distance (int32), UniqueCarrier, Origin, Dest (bytes) and
    dep_delayed_15min (int8, 1 for "Y")."""
    import gzip
    path = _file(data, "airline-flight-delays-100k",
                 "flight_delays_train.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))
    head, rows = rows[0], rows[1:]
    col = {h: [r[i] for r in rows] for i, h in enumerate(head)}
    out = {}
    for k in ("Month", "DayofMonth", "DayOfWeek"):
        out[k] = np.array([v[2:] for v in col[k]], dtype=np.int8)
    for k in ("DepTime", "Distance"):
        out[k] = np.array(col[k], dtype=np.int32)
    for k in ("UniqueCarrier", "Origin", "Dest"):
        out[k] = np.array(col[k], dtype=bytes)
    out["dep_delayed_15min"] = np.array(
        [v == "Y" for v in col["dep_delayed_15min"]], dtype=np.int8)
    return out
