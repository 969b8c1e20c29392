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
