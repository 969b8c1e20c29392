"""A throwaway PostgreSQL server on loopback, made with Debian's initdb in a
directory of its own: what the tests, the benchmarks and a newcomer's first
try of the shared store run against (as ``kafka.local_broker()`` is for
Kafka). A team points ``STREAMWISE_TRACKING_URI`` at its real server
instead.

    with store.local_postgres() as pg:
        st = store.set_store(pg.database("team"), artifact_root="/shared/sw")
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

from . import _sw


def _bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise _sw.IOError("local_postgres: no initdb (apt install postgresql)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """A PostgreSQL cluster in dir (a temporary one by default) listening
    on 127.0.0.1:port, superuser ``streamwise``, trust authentication on
    loopback only. PostgreSQL refuses to run as root, so as root the
    server runs as the ``postgres`` user that Debian's package creates."""

    USER = "streamwise"

    def __init__(self, dir=None, port=None, settings=None):
        self._own = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="sw-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = port or _free_port()
        self.settings = dict(settings or {})
        self._bin = _bindir()
        self._as = []
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chmod(self.dir, 0o755)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.running = False

    def _run(self, *args, timeout=120):
        # make sanitize-python preloads libasan into Python; the server
        # is not ours to instrument (initdb hangs with it preloaded)
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        r = subprocess.run(self._as + [os.path.join(self._bin, args[0]),
                                       *args[1:]],
                           capture_output=True, text=True, timeout=timeout,
                           env=env)
        if r.returncode != 0:
            raise _sw.IOError(f"local_postgres: {args[0]} failed: "
                              f"{(r.stderr or r.stdout).strip()[-2000:]}")
        return r

    def start(self):
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run("initdb", "-D", self.data, "-U", self.USER,
                      "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        opts = [f"-p {self.port}", "-c listen_addresses=127.0.0.1",
                "-c unix_socket_directories=''"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.log, "-w",
                  "-t", "60", "-o", " ".join(opts))
        self.running = True
        return self

    def stop(self, mode="fast"):
        """Stop the server; mode "immediate" is a crash (no shutdown
        checkpoint), as a server that goes away."""
        if self.running:
            self._run("pg_ctl", "stop", "-D", self.data, "-m", mode, "-w",
                      "-t", "60")
            self.running = False

    def uri(self, database="postgres"):
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def database(self, name):
        """A new empty database on the server; returns its URI."""
        import psycopg2
        con = psycopg2.connect(self.uri(), connect_timeout=10)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.uri(name)

    def close(self):
        try:
            self.stop()
        finally:
            if self._own:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start() if not self.running else self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"LocalPostgres({self.uri()!r}, "
                f"{'running' if self.running else 'stopped'})")


def local_postgres(dir=None, port=None, settings=None):
    """A PostgreSQL server on loopback, started (use it in ``with``)."""
    return LocalPostgres(dir, port, settings).start()
