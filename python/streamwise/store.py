"""The tracking store: one SQLite database plus one directory per run.

Layout of a store (default ``./streamwise-runs``, or ``$STREAMWISE_TRACKING_URI``):

    streamwise.db                 runs, params, tags, metric summaries,
                                  inputs, artifacts, the model registry
    runs/<run_id>/metrics/*.bin   metric series, one file per key
    runs/<run_id>/artifacts/      logged files
    runs/<run_id>/models/         models logged with log_model
    models/<name>/<version>.swm   registered model versions (read-only)

The database runs in WAL mode with a busy timeout, and every write is a
``BEGIN IMMEDIATE`` transaction: a writer takes the write lock before it
reads, so concurrent processes queue on the busy timeout instead of failing
with "database is locked" when a read transaction would have to be upgraded.
The SQL is portable (plain types, ``ON CONFLICT`` upserts, no SQLite
functions in queries) so that the schema can later live on PostgreSQL; the
one SQLite-specific piece, the triggers that make the promotion log
append-only, is marked below.
"""
import os
import sqlite3
import threading
import time

from . import _sw

#: Schema migrations: version -> statements. Append, never edit.
MIGRATIONS = {
    1: [
        """CREATE TABLE experiments (
               experiment_id INTEGER PRIMARY KEY,
               name TEXT NOT NULL UNIQUE,
               created REAL NOT NULL)""",
        """CREATE TABLE runs (
               run_id TEXT PRIMARY KEY,
               experiment_id INTEGER NOT NULL
                   REFERENCES experiments (experiment_id),
               name TEXT,
               parent_id TEXT REFERENCES runs (run_id),
               status TEXT NOT NULL,
               start_time REAL NOT NULL,
               end_time REAL,
               user_name TEXT,
               host TEXT,
               git_commit TEXT,
               git_dirty INTEGER,
               streamwise_version TEXT,
               core_build TEXT,
               seed INTEGER)""",
        "CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time)",
        """CREATE TABLE params (
               run_id TEXT NOT NULL REFERENCES runs (run_id),
               key TEXT NOT NULL,
               value TEXT NOT NULL,
               PRIMARY KEY (run_id, key))""",
        """CREATE TABLE tags (
               run_id TEXT NOT NULL REFERENCES runs (run_id),
               key TEXT NOT NULL,
               value TEXT NOT NULL,
               PRIMARY KEY (run_id, key))""",
        """CREATE TABLE metrics (
               run_id TEXT NOT NULL REFERENCES runs (run_id),
               key TEXT NOT NULL,
               series TEXT NOT NULL,
               n INTEGER NOT NULL,
               last_value REAL,
               min_value REAL,
               max_value REAL,
               last_step INTEGER,
               last_event_time INTEGER,
               last_wall_time REAL,
               PRIMARY KEY (run_id, key))""",
        """CREATE TABLE inputs (
               input_id INTEGER PRIMARY KEY,
               run_id TEXT NOT NULL REFERENCES runs (run_id),
               kind TEXT NOT NULL,
               slice TEXT NOT NULL,
               logged REAL NOT NULL)""",
        """CREATE TABLE artifacts (
               run_id TEXT NOT NULL REFERENCES runs (run_id),
               path TEXT NOT NULL,
               sha256 TEXT NOT NULL,
               size INTEGER NOT NULL,
               PRIMARY KEY (run_id, path))""",
        """CREATE TABLE model_versions (
               name TEXT NOT NULL,
               version INTEGER NOT NULL,
               sha256 TEXT NOT NULL,
               path TEXT NOT NULL,
               size INTEGER NOT NULL,
               source TEXT,
               source_run TEXT,
               created REAL NOT NULL,
               created_by TEXT,
               PRIMARY KEY (name, version),
               UNIQUE (name, sha256))""",
        """CREATE TABLE aliases (
               name TEXT NOT NULL,
               alias TEXT NOT NULL,
               version INTEGER NOT NULL,
               generation INTEGER NOT NULL,
               PRIMARY KEY (name, alias),
               FOREIGN KEY (name, version)
                   REFERENCES model_versions (name, version))""",
        """CREATE TABLE promotions (
               promotion_id INTEGER PRIMARY KEY,
               name TEXT NOT NULL,
               alias TEXT NOT NULL,
               old_version INTEGER,
               new_version INTEGER NOT NULL,
               generation INTEGER NOT NULL,
               who TEXT NOT NULL,
               at REAL NOT NULL,
               reason TEXT NOT NULL,
               evidence TEXT NOT NULL)""",
        # SQLite-specific: the promotion log is append-only.
        """CREATE TRIGGER promotions_no_update BEFORE UPDATE ON promotions
           BEGIN SELECT RAISE(ABORT, 'the promotion log is append-only'); END""",
        """CREATE TRIGGER promotions_no_delete BEFORE DELETE ON promotions
           BEGIN SELECT RAISE(ABORT, 'the promotion log is append-only'); END""",
        """CREATE TRIGGER versions_no_update BEFORE UPDATE ON model_versions
           BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END""",
    ],
    # What runners actually serve, written by the runners themselves
    # (csrc/io/sw_registry.c): each switch to a version, and each version
    # refused with its reason. Append-only, as the promotion log.
    2: [
        """CREATE TABLE deployments (
               deployment_id INTEGER PRIMARY KEY,
               name TEXT NOT NULL,
               ref TEXT NOT NULL,
               version INTEGER,
               sha256 TEXT,
               runner TEXT NOT NULL,
               status TEXT NOT NULL CHECK (status IN ('serving', 'refused')),
               reason TEXT NOT NULL,
               at REAL NOT NULL)""",
        "CREATE INDEX deployments_by_name ON deployments (name, at)",
        """CREATE TRIGGER deployments_no_update BEFORE UPDATE ON deployments
           BEGIN SELECT RAISE(ABORT, 'the deployment log is append-only');
           END""",
        """CREATE TRIGGER deployments_no_delete BEFORE DELETE ON deployments
           BEGIN SELECT RAISE(ABORT, 'the deployment log is append-only');
           END""",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

DB_NAME = "streamwise.db"
DEFAULT_ROOT = "streamwise-runs"
BUSY_TIMEOUT_MS = 60_000


class StoreError(_sw.FormatError):
    """The tracking store cannot be used as it is (corrupt, too new...)."""


def default_root():
    """The store directory: $STREAMWISE_TRACKING_URI (a path, or a file:
    URI), else ./streamwise-runs."""
    uri = os.environ.get("STREAMWISE_TRACKING_URI")
    if not uri:
        return os.path.abspath(DEFAULT_ROOT)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    elif uri.startswith("file:"):
        uri = uri[len("file:"):]
    return os.path.abspath(uri)


class Store:
    """A handle on one store directory, safe to share between threads (one
    SQLite connection per thread) and between processes (WAL + immediate
    transactions)."""

    def __init__(self, root=None):
        self.root = os.path.abspath(root) if root else default_root()
        self.db_path = os.path.join(self.root, DB_NAME)
        self._local = threading.local()
        os.makedirs(self.root, exist_ok=True)
        self._migrate()

    # ---- connections ---------------------------------------------------

    def _connect(self):
        # Switching a new database to WAL takes an exclusive lock that
        # SQLite does not wait for through the busy handler: when several
        # processes open a fresh store at once, "locked" here means "try
        # again", not "corrupt" (seen: 1 of 8 processes refused).
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.005
        while True:
            con = None
            try:
                con = sqlite3.connect(self.db_path,
                                      timeout=BUSY_TIMEOUT_MS / 1000,
                                      isolation_level=None,
                                      check_same_thread=False)
                con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                con.execute("PRAGMA synchronous = NORMAL")
                con.execute("PRAGMA foreign_keys = ON")
                break
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e) or "busy" in str(e)
                if con is not None:
                    con.close()
                if not busy or time.monotonic() > deadline:
                    raise StoreError(
                        f"tracking store {self.db_path}: cannot open it as a "
                        f"SQLite database ({e}); it was left untouched"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
            except sqlite3.DatabaseError as e:
                raise StoreError(
                    f"tracking store {self.db_path}: cannot open it as a "
                    f"SQLite database ({e}); it was left untouched") from None
        if mode.lower() != "wal":
            raise StoreError(f"tracking store {self.db_path}: journal mode "
                             f"{mode}, expected wal")
        return con

    @property
    def con(self):
        # A connection must not cross a fork: a child opens its own.
        if getattr(self._local, "pid", None) != os.getpid():
            self._local.con = None
            self._local.pid = os.getpid()
        con = self._local.con
        if con is None:
            con = self._local.con = self._connect()
        return con

    def read(self, sql, args=()):
        try:
            return self.con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"tracking store {self.db_path}: {e}") from None

    def write(self, fn):
        """Run fn(connection) in one BEGIN IMMEDIATE transaction and return
        its result; retried while another process holds the write lock for
        longer than the busy timeout allows."""
        con = self.con
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                raise StoreError(f"tracking store {self.db_path}: {e}") \
                    from None
            except sqlite3.DatabaseError as e:
                raise StoreError(f"tracking store {self.db_path}: {e}") \
                    from None
            try:
                result = fn(con)
                con.execute("COMMIT")
                return result
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # ---- schema ----------------------------------------------------------

    def _version(self, con):
        have = con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                           "AND name='schema_version'").fetchone()
        if have is None:
            tables = con.execute("SELECT count(*) FROM sqlite_master "
                                 "WHERE type='table'").fetchone()[0]
            if tables:
                raise StoreError(
                    f"tracking store {self.db_path}: a SQLite database, but "
                    "not a streamwise store (no schema_version table); it was "
                    "left untouched")
            return 0
        row = con.execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def _migrate(self):
        def step(con):
            v = self._version(con)
            if v > SCHEMA_VERSION:
                raise StoreError(
                    f"tracking store {self.db_path}: schema {v} is newer than "
                    f"this streamwise reads ({SCHEMA_VERSION}); upgrade "
                    "streamwise")
            if v == 0:
                con.execute("CREATE TABLE schema_version (version INTEGER "
                            "NOT NULL)")
                con.execute("INSERT INTO schema_version VALUES (0)")
            for target in range(v + 1, SCHEMA_VERSION + 1):
                for sql in MIGRATIONS[target]:
                    con.execute(sql)
                con.execute("UPDATE schema_version SET version = ?",
                            (target,))
        try:
            # One read transaction, so that both look-ups in _version see the
            # same snapshot even while another process is migrating.
            con = self.con
            con.execute("BEGIN")
            try:
                current = self._version(con)
            finally:
                con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"tracking store {self.db_path}: not a SQLite database "
                f"({e}); it was left untouched") from None
        if current != SCHEMA_VERSION:
            self.write(step)

    # ---- paths -----------------------------------------------------------

    def run_dir(self, run_id, *parts):
        return os.path.join(self.root, "runs", run_id, *parts)

    def relpath(self, path):
        return os.path.relpath(path, self.root)

    def abspath(self, rel):
        return os.path.join(self.root, rel)


_STORES = {}
_STORES_LOCK = threading.Lock()


def get_store(root=None):
    """The shared Store for a directory (default: default_root())."""
    root = os.path.abspath(root) if root else default_root()
    with _STORES_LOCK:
        st = _STORES.get(root)
        if st is None:
            st = _STORES[root] = Store(root)
        return st
