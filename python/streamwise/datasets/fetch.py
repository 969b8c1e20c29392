"""Fetchers for the real data sets that may be redistributed, in the style
of ``sklearn.datasets.fetch_*``: a public address, a SHA-256, a cache
directory, and the layout the loaders read.

    X, y = streamwise.datasets.fetch_banknote()     # downloads once

The cache directory is ``data_home``, else ``$STREAMWISE_DATA``, else
``~/streamwise_data``; a data set already there (for instance the
project's ``../shared/datasets``, named by ``$STREAMWISE_DATA``) is read
in place and nothing is downloaded. A download goes to a temporary file
beside its destination, is checked against its SHA-256 and only then
renamed into place: a failed or wrong download leaves nothing behind.
``$STREAMWISE_DATA_MIRROR`` (or ``mirror=``) replaces the addresses by
``<mirror>/<data set>/<file>``, for a site without internet access.

The addresses are the exact copies the project's data sets were taken
from (GitHub, pinned to a commit, whose git blob and SHA-256 were
checked); the publishers are named in each entry and in
``../shared/datasets/*/SOURCE.md``. MovieLens, Last.fm and the Kaggle
samples have no-redistribution terms: their loaders read them from a
data directory that you fill from the publisher's site.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from typing import Any

from .loaders import DataNotFound, load_a8a, load_banknote

__all__ = ["DATASETS", "fetch", "fetch_banknote", "fetch_a8a",
           "default_data_home"]


#: name -> files: (path in the data set's folder, address, SHA-256 of the
#: content as downloaded, gzip the stored copy), and the publisher
DATASETS: dict[str, dict[str, Any]] = {
    "banknote": {
        "publisher": "UCI Machine Learning Repository, Banknote "
                     "Authentication (V. Lohweg, 2012), CC BY 4.0",
        "files": [(
            "data_banknote_authentication.txt",
            "https://raw.githubusercontent.com/tomek19991999/"
            "Perceptron-Algorithm/1b10400e7d4830a70abd44a589b4f7ffc3b414fc/"
            "data_banknote_authentication.txt",
            "63cb547740b3d71fc4a7fa05a6f5005ba63e86a64d2dfb11251398611fb7b19c",
            False)],
    },
    "libsvm-a8a": {
        "publisher": "LIBSVM Data (C.-C. Chang and C.-J. Lin), UCI Adult "
                     "as binarised by J. Platt; cite the original sources",
        "files": [(
            "a8a.gz",
            "https://raw.githubusercontent.com/unc-optimization/AccSPD/"
            "d2f1f2c961e3401032649544445bb24ab63ab1c5/data/a8a",
            "d08a37b3fadd4bd3c8b3fc30bdc93b54d7c0f371265c90cbfb931a7efe97cd28",
            True)],
    },
}


def default_data_home(data_home: str | None = None) -> str:
    """data_home, else $STREAMWISE_DATA, else ~/streamwise_data."""
    return os.path.abspath(os.path.expanduser(
        data_home or os.environ.get("STREAMWISE_DATA") or
        os.path.join("~", "streamwise_data")))


def _sha256_of(path, gz):
    h = hashlib.sha256()
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url, dest, sha256, gz, name, timeout):
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=folder)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as raw:
            out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if gz \
                else raw
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    for block in iter(lambda: r.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
            finally:
                if gz:
                    out.close()
        got = h.hexdigest()
        if got != sha256:
            raise DataNotFound(
                f"{name}: {url} sent content with SHA-256 {got}, expected "
                f"{sha256}; nothing was kept (a changed file, or a proxy's "
                "error page)")
        os.replace(tmp, dest)
        tmp = None
    except (urllib.error.URLError, OSError) as e:
        if isinstance(e, DataNotFound):
            raise
        reason = f"HTTP {e.code} {e.reason}" if isinstance(
            e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
        raise DataNotFound(
            f"{name}: could not download {url} ({reason}). Offline? Put "
            f"the file at {dest} (SHA-256 {sha256}), or point "
            "$STREAMWISE_DATA at a directory that holds the data sets, or "
            "$STREAMWISE_DATA_MIRROR at a copy of the addresses") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def fetch(name: str, data_home: str | None = None,
          download_if_missing: bool = True, mirror: str | None = None,
          timeout: float = 60) -> str:
    """The data directory holding data set `name` (a key of DATASETS),
    downloaded into it first if missing; pass it to the loaders as
    ``data=``."""
    if name not in DATASETS:
        raise DataNotFound(f"no fetcher for {name!r}; streamwise fetches "
                           f"{', '.join(DATASETS)}")
    home = default_data_home(data_home)
    mirror = mirror or os.environ.get("STREAMWISE_DATA_MIRROR")
    for path, url, sha256, gz in DATASETS[name]["files"]:
        dest = os.path.join(home, name, path)
        if os.path.exists(dest):
            if _sha256_of(dest, gz) == sha256:
                continue
            raise DataNotFound(
                f"{name}: {dest} is there but its content's SHA-256 is not "
                f"{sha256}; remove it to download it again")
        if not download_if_missing:
            raise DataNotFound(f"{name}: {dest} is missing and "
                               "download_if_missing is False")
        if mirror:
            url = f"{mirror.rstrip('/')}/{name}/{os.path.basename(url)}"
        _download(url, dest, sha256, gz, name, timeout)
    return home


def fetch_banknote(data_home: str | None = None, shuffle: bool = True,
                   seed: int = 0, download_if_missing: bool = True,
                   mirror: str | None = None) -> tuple[Any, Any]:
    """UCI banknote authentication, fetched if missing: X (1372, 4), y in
    {0, 1}, shuffled with default_rng(seed) (the file lists one class
    first)."""
    return load_banknote(fetch("banknote", data_home, download_if_missing,
                               mirror), shuffle=shuffle, seed=seed)


def fetch_a8a(data_home: str | None = None, download_if_missing: bool = True,
              mirror: str | None = None) -> tuple[Any, Any]:
    """LIBSVM a8a, fetched if missing: X CSR (22696, 123), y in {-1, +1}."""
    return load_a8a(fetch("libsvm-a8a", data_home, download_if_missing,
                          mirror))
