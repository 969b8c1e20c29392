"""Shared fixtures: seeded data, the runner binary, fixture paths."""
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
SERVE = os.path.join(ROOT, "build", "bin", "sw-serve")
FIXTURES = os.path.join(ROOT, "tests", "c", "data")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def serve():
    """Path of the C runner; `make` builds it before the tests run."""
    if not os.path.exists(SERVE):
        subprocess.check_call(["make", "-C", ROOT, "runner"])
    return SERVE


def have_data(*parts):
    from streamwise.datasets import DataNotFound, data_dir
    try:
        return os.path.exists(os.path.join(data_dir(), *parts))
    except DataNotFound:
        return False


def separable(rng, n=300, d=6, k=2, noise=0.3):
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k))
    y = np.argmax(X @ W + noise * rng.standard_normal((n, k)), axis=1)
    return X, y


# ---------------------------------------------------------------------------
# Tracking stores: the embedded SQLite one and a real PostgreSQL server
# ---------------------------------------------------------------------------

STORE_KINDS = ["sqlite", "postgresql"]
_DATABASES = iter(range(1, 1 << 30))


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL cluster made with initdb in a temporary directory and
    started on a loopback port for this test session (durability settings
    off: the tests are about semantics, the benchmark runs with them on)."""
    from streamwise.store import local_postgres
    pg = local_postgres(settings={"fsync": "off",
                                  "synchronous_commit": "off",
                                  "full_page_writes": "off"})
    yield pg
    pg.close()


def make_store(kind, tmp_path, request):
    """A fresh store of the kind: a directory, or a new database on the
    session's server with its artifact directory under tmp_path."""
    if kind == "sqlite":
        return str(tmp_path / "runs")
    from streamwise.store import get_store
    pg = request.getfixturevalue("pg_server")
    uri = pg.database(f"t{next(_DATABASES)}")
    get_store(uri, artifact_root=str(tmp_path / "artifacts"))
    return uri


def raw_sql(store, sql):
    """Run sql on the store's database behind streamwise's back (to show
    what the database itself refuses); raises the driver's own error."""
    if store.startswith("postgresql://"):
        import psycopg2
        con = psycopg2.connect(store)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()
    else:
        import sqlite3
        con = sqlite3.connect(os.path.join(store, "streamwise.db"))
        try:
            con.execute(sql)
            con.commit()
        finally:
            con.close()


def raw_errors():
    import sqlite3
    import psycopg2
    return (sqlite3.DatabaseError, psycopg2.Error)
