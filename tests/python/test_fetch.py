"""The data set fetchers' real download code, against an HTTP server on
loopback: cache, SHA-256 check, nothing kept from a bad download, a clear
error when offline."""
import hashlib
import http.server
import importlib
import os
import threading

import numpy as np
import pytest

from streamwise import datasets
from streamwise.datasets import DataNotFound, fetch

from conftest import have_data

FETCH = importlib.import_module("streamwise.datasets.fetch")


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/site over HTTP on 127.0.0.1, counting requests."""
    site = tmp_path / "site"
    site.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(site), **kw)

        def log_message(self, *a):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield site, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def fixture_set(monkeypatch, site, gz=False):
    """A small banknote-format file served by the site, registered under
    its own SHA-256 in place of the real one."""
    body = b"".join(f"{i * 0.5},{-i},{i % 3},{i / 7},{i % 2}\r\n".encode()
                    for i in range(40))
    (site / "banknote").mkdir(exist_ok=True)
    (site / "banknote" / "data_banknote_authentication.txt").write_bytes(body)
    entry = dict(FETCH.DATASETS["banknote"])
    path, url, _, _ = entry["files"][0]
    entry["files"] = [(path, url, hashlib.sha256(body).hexdigest(), gz)]
    monkeypatch.setitem(FETCH.DATASETS, "banknote", entry)
    return body


def test_download_once_then_read_from_the_cache(server, tmp_path,
                                                monkeypatch):
    site, url, hits = server
    body = fixture_set(monkeypatch, site)
    home = tmp_path / "home"
    X, y = datasets.fetch_banknote(data_home=str(home), mirror=url,
                                   shuffle=False)
    assert X.shape == (40, 4) and list(y[:4]) == [0, 1, 0, 1]
    assert (home / "banknote" / "data_banknote_authentication.txt"
            ).read_bytes() == body
    assert len(hits) == 1
    datasets.fetch_banknote(data_home=str(home), mirror=url)
    assert len(hits) == 1                       # the cache answered
    # $STREAMWISE_DATA names the cache when data_home is not given
    monkeypatch.setenv("STREAMWISE_DATA", str(home))
    assert fetch("banknote", mirror=url) == str(home)
    assert len(hits) == 1


def test_a_wrong_download_is_refused_and_nothing_is_kept(server, tmp_path,
                                                         monkeypatch):
    site, url, hits = server
    fixture_set(monkeypatch, site)
    (site / "banknote" / "data_banknote_authentication.txt").write_bytes(
        b"<html>proxy error</html>")
    home = tmp_path / "home"
    with pytest.raises(DataNotFound, match="SHA-256 .* expected .* nothing "
                                           "was kept"):
        fetch("banknote", data_home=str(home), mirror=url)
    assert os.listdir(home / "banknote") == []   # no part file either
    # a damaged file in the cache is named, not used
    (home / "banknote" / "data_banknote_authentication.txt").write_text("x")
    with pytest.raises(DataNotFound, match="is there but its content"):
        fetch("banknote", data_home=str(home), mirror=url)


def test_offline_is_a_clear_error(tmp_path, monkeypatch, server):
    site, url, hits = server
    fixture_set(monkeypatch, site)
    with pytest.raises(DataNotFound, match=r"could not download .*404.*"
                                           r"Offline\? Put the file at"):
        fetch("banknote", data_home=str(tmp_path / "h"), mirror=url + "/no")
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                   # nothing listens there
    with pytest.raises(DataNotFound, match="could not download .*Offline"):
        fetch("banknote", data_home=str(tmp_path / "h"),
              mirror=f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(DataNotFound, match="download_if_missing is False"):
        fetch("banknote", data_home=str(tmp_path / "h"),
              download_if_missing=False)
    with pytest.raises(DataNotFound, match="fetches banknote, libsvm-a8a"):
        fetch("movielens")


@pytest.mark.skipif(not (have_data("banknote") and have_data("libsvm-a8a")),
                    reason="../shared/datasets is not here")
def test_the_real_files_pass_their_checksums(server, tmp_path):
    # the project's copies, served as the addresses serve them: the
    # registered SHA-256s are the real files'
    import gzip
    import shutil
    site, url, hits = server
    from streamwise.datasets import data_dir
    shared = data_dir()
    (site / "banknote").mkdir()
    shutil.copy(os.path.join(shared, "banknote",
                             "data_banknote_authentication.txt"),
                site / "banknote")
    (site / "libsvm-a8a").mkdir()
    with gzip.open(os.path.join(shared, "libsvm-a8a", "a8a.gz")) as f:
        (site / "libsvm-a8a" / "a8a").write_bytes(f.read())
    home = str(tmp_path / "home")
    X, y = datasets.fetch_banknote(data_home=home, mirror=url)
    X0, y0 = datasets.load_banknote()
    assert np.array_equal(X, X0) and np.array_equal(y, y0)
    A, b = datasets.fetch_a8a(data_home=home, mirror=url)
    A0, b0 = datasets.load_a8a()
    assert (A != A0).nnz == 0 and np.array_equal(b, b0)


# ---- from the publisher's zip (MovieLens, Last.fm) ----------------------

def zip_site(site, name, zipname, members):
    import zipfile
    (site / name).mkdir(exist_ok=True)
    with zipfile.ZipFile(site / name / zipname, "w") as z:
        for member, body in members.items():
            z.writestr(member, body)


def small_movielens(monkeypatch):
    """u.data and u.item of 3 users x 4 movies, registered under their
    own SHA-256s (the other members dropped from the entry)."""
    data = b"".join(f"{u}\t{i}\t{(u * i) % 5 + 1}\t87472471{u}\n".encode()
                    for u in (1, 2, 3) for i in (1, 2, 4))
    item = b"".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|0\n"
                    .encode("latin-1") for i in (1, 2, 3, 4))
    entry = dict(FETCH.DATASETS["movielens-100k"])
    entry["files"] = [("u.data.gz", "ml-100k/u.data",
                       hashlib.sha256(data).hexdigest(), True),
                      ("u.item.gz", "ml-100k/u.item",
                       hashlib.sha256(item).hexdigest(), True)]
    monkeypatch.setitem(FETCH.DATASETS, "movielens-100k", entry)
    return {"ml-100k/u.data": data, "ml-100k/u.item": item,
            "ml-100k/README": b"terms"}


def test_an_archive_is_fetched_checked_unpacked_and_cached(
        server, tmp_path, monkeypatch):
    import gzip
    site, url, hits = server
    members = small_movielens(monkeypatch)
    zip_site(site, "movielens-100k", "ml-100k.zip", members)
    home = str(tmp_path / "home")
    R, titles = datasets.fetch_movielens_100k(data_home=home, mirror=url)
    assert R.shape == (3, 4) and R[1, 3] == (2 * 4) % 5 + 1
    assert titles[3] == "Movie 4 (1995)"
    stored = tmp_path / "home" / "movielens-100k"
    assert sorted(os.listdir(stored)) == ["u.data.gz", "u.item.gz"]
    with gzip.open(stored / "u.data.gz") as f:
        assert f.read() == members["ml-100k/u.data"]
    assert hits == ["/movielens-100k/ml-100k.zip"]
    datasets.fetch_movielens_100k(data_home=home, mirror=url)
    assert len(hits) == 1                       # cached: no second download


def test_a_wrong_archive_member_keeps_nothing(server, tmp_path, monkeypatch):
    site, url, hits = server
    members = small_movielens(monkeypatch)
    members["ml-100k/u.item"] += b"5|Tampered|||x|0\n"
    zip_site(site, "movielens-100k", "ml-100k.zip", members)
    home = tmp_path / "home"
    with pytest.raises(DataNotFound, match="u.item in the archive has "
                                           "SHA-256 .* nothing was kept"):
        fetch("movielens-100k", data_home=str(home), mirror=url)
    assert os.listdir(home / "movielens-100k") == []
    # not a zip at all (a proxy's error page)
    (site / "movielens-100k" / "ml-100k.zip").write_bytes(b"<html>")
    with pytest.raises(DataNotFound, match="not a zip archive"):
        fetch("movielens-100k", data_home=str(home), mirror=url)
    assert os.listdir(home / "movielens-100k") == []


def test_lastfm_lines_are_compared_with_lf_ends(server, tmp_path,
                                                monkeypatch):
    site, url, hits = server
    lf = b"userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t7\n"
    entry = dict(FETCH.DATASETS["lastfm-hetrec2011-2k"])
    path, member, _, gz = entry["files"][0]
    entry["files"] = [(path, member, hashlib.sha256(lf).hexdigest(), gz)]
    monkeypatch.setitem(FETCH.DATASETS, "lastfm-hetrec2011-2k", entry)
    zip_site(site, "lastfm-hetrec2011-2k", "hetrec2011-lastfm-2k.zip",
             {"user_artists.dat": lf.replace(b"\n", b"\r\n")})
    plays, users, artists = datasets.fetch_lastfm(
        data_home=str(tmp_path / "home"), mirror=url)
    assert list(users) == [2, 3] and list(artists) == [51, 52]
    assert plays[0, 0] == 13883 and plays[1, 0] == 7


@pytest.mark.skipif(not (have_data("movielens-100k") and
                         have_data("lastfm-hetrec2011-2k")),
                    reason="../shared/datasets is not here")
def test_the_registered_member_checksums_are_the_project_copies(
        server, tmp_path):
    # zips made of the project's copies, laid out as GroupLens lays them:
    # the registered SHA-256s are those files' (not checked here against
    # GroupLens's own zips: no internet)
    import gzip
    from streamwise.datasets import data_dir
    site, url, hits = server
    shared = data_dir()
    for name, zipname, lf in (("movielens-100k", "ml-100k.zip", False),
                              ("lastfm-hetrec2011-2k",
                               "hetrec2011-lastfm-2k.zip", True)):
        members = {}
        for path, member, _, gz in FETCH.DATASETS[name]["files"]:
            with gzip.open(os.path.join(shared, name, path)) as f:
                body = f.read()
            members[member] = body.replace(b"\n", b"\r\n") if lf else body
        zip_site(site, name, zipname, members)
        fetch(name, data_home=str(tmp_path / "home"), mirror=url)
    R, _ = datasets.fetch_movielens_100k(data_home=str(tmp_path / "home"))
    R0, _ = datasets.load_movielens_100k()
    assert (R != R0).nnz == 0
    P, _, _ = datasets.fetch_lastfm(data_home=str(tmp_path / "home"))
    P0, _, _ = datasets.load_lastfm()
    assert (P != P0).nnz == 0
