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
``../shared/datasets/*/SOURCE.md``.

MovieLens and Last.fm may not be redistributed, so streamwise never ships
them: ``fetch_movielens_100k()`` and ``fetch_lastfm()`` download the
publisher's own zip from GroupLens (you accept its terms, printed in the
entry), take the members the loaders read, check each member's content
against the SHA-256 of the copy the project was tested with, and store it
gzipped in the layout the loaders expect. Last.fm's text is compared with
its line ends made LF (the project's copy has LF; the zip may have CRLF).
The Kaggle samples (TalkingData, flight delays) need a Kaggle account:
their loaders read them from a data directory you fill.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Any

from .loaders import (DataNotFound, load_a8a, load_banknote, load_lastfm,
                      load_movielens_100k)

__all__ = ["DATASETS", "fetch", "fetch_banknote", "fetch_a8a",
           "fetch_movielens_100k", "fetch_lastfm", "default_data_home"]

_ML = "ml-100k/"


#: name -> files: (path in the data set's folder, address, SHA-256 of the
#: content as downloaded, gzip the stored copy), and the publisher. An
#: entry with an "archive" (the zip's address) names zip members instead of
#: addresses, and "lf": their content is compared with LF line ends.
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


DATASETS["movielens-100k"] = {
    "publisher": "GroupLens Research, MovieLens 100K (F. M. Harper and "
                 "J. A. Konstan, ACM TiiS 5(4), 2015); its README's terms: "
                 "research use, cite the paper, no redistribution without "
                 "permission",
    "archive": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "files": [(f"{m}.gz", _ML + m, sha, True) for m, sha in (
        ("u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
        ("u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
        ("u.user", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
        ("u1.base", "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a"),
        ("u1.test", "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950"),
        ("u2.base", "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e"),
        ("u2.test", "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3"),
        ("u3.base", "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d"),
        ("u3.test", "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d"),
        ("u4.base", "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca"),
        ("u4.test", "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9"),
        ("u5.base", "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485"),
        ("u5.test", "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634"),
        ("ua.base", "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2"),
        ("ua.test", "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42"),
        ("ub.base", "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881"),
        ("ub.test", "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da"),
    )],
}
DATASETS["lastfm-hetrec2011-2k"] = {
    "publisher": "HetRec 2011 (I. Cantador, P. Brusilovsky, T. Kuflik, "
                 "RecSys 2011), data from Last.fm, distributed by "
                 "GroupLens; research use, no redistribution",
    "archive": "https://files.grouplens.org/datasets/hetrec2011/"
               "hetrec2011-lastfm-2k.zip",
    "lf": True,
    "files": [(
        "user_artists.dat.gz", "user_artists.dat",
        "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416",
        True)],
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


def _unpack(name, zpath, files, home, lf):
    """The members of the downloaded zip at zpath into home/name, each
    checked against its SHA-256 first: all of them, or none."""
    folder = os.path.join(home, name)
    done = []
    try:
        with zipfile.ZipFile(zpath) as z:
            bodies = []
            for path, member, sha256, gz in files:
                try:
                    body = z.read(member)
                except KeyError:
                    raise DataNotFound(
                        f"{name}: the archive has no {member}; expected the "
                        f"publisher's layout") from None
                if lf:
                    body = body.replace(b"\r\n", b"\n")
                got = hashlib.sha256(body).hexdigest()
                if got != sha256:
                    raise DataNotFound(
                        f"{name}: {member} in the archive has SHA-256 {got}, "
                        f"expected {sha256}; nothing was kept (a new "
                        "release of the data set?)")
                bodies.append((path, body, gz))
        for path, body, gz in bodies:
            fd, tmp = tempfile.mkstemp(prefix=".part-", dir=folder)
            done.append(tmp)
            with os.fdopen(fd, "wb") as raw:
                if gz:
                    with gzip.GzipFile(fileobj=raw, mode="wb",
                                       mtime=0) as out:
                        out.write(body)
                else:
                    raw.write(body)
        for (path, _, _), tmp in zip(bodies, done):
            os.replace(tmp, os.path.join(folder, path))
        done = []
    except zipfile.BadZipFile as e:
        raise DataNotFound(f"{name}: the download is not a zip archive "
                           f"({e}); nothing was kept") from None
    finally:
        for tmp in done:
            if os.path.exists(tmp):
                os.unlink(tmp)


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
        raise _offline(e, name, url,
                       f"the file at {dest} (SHA-256 {sha256})") from None
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
    entry = DATASETS[name]
    if "archive" in entry:
        return _fetch_archive(name, entry, home, download_if_missing, mirror,
                              timeout)
    for path, url, sha256, gz in entry["files"]:
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


def _fetch_archive(name, entry, home, download_if_missing, mirror, timeout):
    """An archive's members, downloaded and unpacked once (all of them)
    unless every one is there already."""
    lf = bool(entry.get("lf"))
    missing = []
    for path, member, sha256, gz in entry["files"]:
        dest = os.path.join(home, name, path)
        if not os.path.exists(dest):
            missing.append(path)
        elif _sha256_of(dest, gz) != sha256:
            raise DataNotFound(
                f"{name}: {dest} is there but its content's SHA-256 is not "
                f"{sha256}; remove it to download it again")
    if not missing:
        return home
    if not download_if_missing:
        raise DataNotFound(f"{name}: {', '.join(missing)} missing from "
                           f"{os.path.join(home, name)} and "
                           "download_if_missing is False")
    url = entry["archive"]
    if mirror:
        url = f"{mirror.rstrip('/')}/{name}/{os.path.basename(url)}"
    folder = os.path.join(home, name)
    os.makedirs(folder, exist_ok=True)
    fd, zpath = tempfile.mkstemp(prefix=".zip-", dir=folder)
    os.close(fd)
    try:
        h = hashlib.sha256()
        _get(url, zpath, h, name, timeout,
             f"the archive at {zpath} or its members in {folder}")
        _unpack(name, zpath, entry["files"], home, lf)
    finally:
        os.unlink(zpath)
    return home


def _get(url, dest, h, name, timeout, where):
    """url's bytes into dest (h hashes them), or DataNotFound saying what
    went wrong and what to put where."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, \
                open(dest, "wb") as out:
            for block in iter(lambda: r.read(1 << 20), b""):
                h.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as e:
        raise _offline(e, name, url, where) from None


def _offline(e, name, url, where):
    """The error of a failed download: what failed, and the ways around."""
    reason = f"HTTP {e.code} {e.reason}" if isinstance(
        e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
    return DataNotFound(
        f"{name}: could not download {url} ({reason}). Offline? Put "
        f"{where}, or point $STREAMWISE_DATA at a directory that holds the "
        "data sets, or $STREAMWISE_DATA_MIRROR at a copy of the addresses")


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


def fetch_movielens_100k(data_home: str | None = None,
                         download_if_missing: bool = True,
                         mirror: str | None = None) -> tuple[Any, Any]:
    """MovieLens 100K from GroupLens, fetched if missing (its terms:
    research use, no redistribution): (ratings CSR 943 x 1682, titles), as
    load_movielens_100k; the official u1-u5/ua/ub splits are stored too."""
    return load_movielens_100k(fetch("movielens-100k", data_home,
                                     download_if_missing, mirror))


def fetch_lastfm(data_home: str | None = None,
                 download_if_missing: bool = True,
                 mirror: str | None = None) -> tuple[Any, Any, Any]:
    """Last.fm HetRec 2011 (2k users) from GroupLens, fetched if missing
    (research use, no redistribution): (plays CSR, user ids, artist ids),
    as load_lastfm."""
    return load_lastfm(fetch("lastfm-hetrec2011-2k", data_home,
                             download_if_missing, mirror))
