"""The model registry: immutable numbered versions, moving aliases, and an
append-only log of every promotion.

    v = registry.register("runs:/<run_id>/scw", "banknote")   # or a .swm path
    registry.promote("banknote", v, alias="champion",
                     reason="SCW-I beat PA-I on the same replay",
                     evidence={"scw_acc": 0.983, "pa_acc": 0.962})
    registry.resolve("banknote@champion")   # -> path, sha256, version
    registry.history("banknote")             # who, when, old -> new, why

A version is the bytes of a verified .swm file: registering the same bytes
again returns the same version, and no version's bytes can ever change (the
file is copied into the store read-only and the table refuses updates).
Every promotion appends a row with who, when, the old and new version, the
reason, the evidence as JSON and a generation number that only grows, so
"what was champion on the 3rd, who put it there and why" has an answer:
``resolve("name@champion", at=datetime(...))``. The C runner resolves the
same references read-only (``sw_registry_resolve``, ``sw-serve --registry``).
"""
from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import stat
import time
from typing import TYPE_CHECKING, Any, Union

from . import _sw
from .store import get_store
from ._base import who as _current_user, remove_stale_tmp

if TYPE_CHECKING:
    import pandas

    from .store import PgStore, Store

    #: a store: a directory, a postgresql:// URI, or a handle
    StoreLike = Union[str, os.PathLike, Store, PgStore, None]

__all__ = ["register", "promote", "retire", "resolve", "history",
           "versions", "list_models", "ALIASES", "Resolved"]

#: Aliases with a meaning in serving; others are allowed too.
ALIASES = ("champion", "challenger", "shadow")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


#: What resolve() returns: the file, its SHA-256 and its version number.
Resolved = collections.namedtuple("Resolved", "path sha256 version")


def _check_name(name):
    if not _NAME.match(name or ""):
        raise _sw.InvalidArgument(
            f"model name {name!r}: use letters, digits, '_', '.', '-' (at "
            f"most 128, starting with a letter or digit)")


def _source_path(source, store):
    """A .swm path for a source: a path, or runs:/<run_id>/<name>."""
    source = os.fspath(source)
    if source.startswith("runs:/"):
        parts = source[len("runs:/"):].strip("/").split("/", 1)
        if len(parts) != 2:
            raise _sw.InvalidArgument(f"{source!r}: expected "
                                      f"runs:/<run_id>/<model name>")
        run_id, name = parts
        path = store.run_dir(run_id, "models", f"{name}.swm")
        return path, run_id
    run_dir = os.path.join(store.root, "runs")
    rel = os.path.relpath(os.path.abspath(source), run_dir)
    run_id = rel.split(os.sep)[0] if not rel.startswith("..") else None
    return source, run_id


def register(source: str | os.PathLike, name: str,
             store: StoreLike = None) -> int:
    """Register a model file under name and return its version number.

    source: a .swm path, or ``runs:/<run_id>/<name>`` for a model logged
    with ``run.log_model``. The file is verified (checksums, format, golden
    vectors) before anything is recorded."""
    _check_name(name)
    st = get_store(store)
    path, run_id = _source_path(source, st)
    if not os.path.exists(path):
        raise _sw.IOError(f"register: {path}: no such model file")
    _sw.load(path)                     # verified, or FormatError
    with open(path, "rb") as f:
        blob = f.read()
    digest = hashlib.sha256(blob).hexdigest()
    folder = os.path.join(st.root, "models", name)
    os.makedirs(folder, exist_ok=True)

    def add(con):
        row = con.execute("SELECT version FROM model_versions WHERE name = ? "
                          "AND sha256 = ?", (name, digest)).fetchone()
        if row is not None:
            return row[0]
        top = con.execute("SELECT max(version) FROM model_versions WHERE "
                          "name = ?", (name,)).fetchone()[0] or 0
        version = top + 1
        dest = os.path.join(folder, f"{version}.swm")
        tmp = f"{dest}.tmp.{os.getpid()}"
        remove_stale_tmp(folder)
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp, dest)
        con.execute(
            "INSERT INTO model_versions (name, version, sha256, path, size, "
            "source, source_run, created, created_by) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, version, digest, st.relpath(dest), len(blob),
             os.fspath(source), run_id, time.time(), _current_user()))
        return version
    return st.write(add)


def promote(name: str, version: int, alias: str = "champion",
            reason: str = "", evidence: Any = None, who: str | None = None,
            store: StoreLike = None, control: Any = None) -> int:
    """Point alias at version and append the promotion to the log; returns
    the promotion's generation number. A reason is required: the log is
    what people read when they ask why.

    control: {"topic": ..., "bootstrap": ...} (default: the environment's
    STREAMWISE_CONTROL_TOPIC and STREAMWISE_KAFKA_BOOTSTRAP, when both are
    set) announces the promotion on a control topic, keyed name@alias:
    {"model", "alias", "version", "generation", "action": "deploy"}.
    Runners whose job names that topic look at the registry at once
    instead of at their next poll."""
    _check_name(name)
    if not reason or not str(reason).strip():
        raise _sw.InvalidArgument("promote: give a reason (it is kept in the "
                                  "promotion log)")
    if not re.match(r"^[a-z][a-z0-9_-]{0,63}$", alias):
        raise _sw.InvalidArgument(f"alias {alias!r}: use lower-case letters, "
                                  f"digits, '_' or '-'")
    evidence_text = json.dumps(evidence or {}, sort_keys=True, default=str)
    who = who or _current_user()
    st = get_store(store)

    def move(con):
        if con.execute("SELECT 1 FROM model_versions WHERE name = ? AND "
                       "version = ?", (name, int(version))).fetchone() is None:
            raise _sw.InvalidArgument(
                f"promote: {name} has no version {version} "
                f"(registered: {_versions_text(con, name)})")
        old = con.execute("SELECT version FROM aliases WHERE name = ? AND "
                          "alias = ?", (name, alias)).fetchone()
        gen = (con.execute("SELECT max(generation) FROM promotions WHERE "
                           "name = ?", (name,)).fetchone()[0] or 0) + 1
        con.execute("INSERT INTO promotions (name, alias, old_version, "
                    "new_version, generation, who, at, reason, evidence) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, alias, old[0] if old else None, int(version), gen,
                     who, time.time(), str(reason), evidence_text))
        con.execute("INSERT INTO aliases (name, alias, version, generation) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (name, alias) DO UPDATE "
                    "SET version = excluded.version, "
                    "generation = excluded.generation",
                    (name, alias, int(version), gen))
        return gen
    gen = st.write(move)
    _announce(control, name, alias, int(version), gen)
    return gen


def _control_of(control):
    """The control topic given, or the environment's, or None."""
    if control is not None:
        return control
    topic = os.environ.get("STREAMWISE_CONTROL_TOPIC")
    bootstrap = os.environ.get("STREAMWISE_KAFKA_BOOTSTRAP")
    if not (topic and bootstrap):
        return None
    return {"topic": topic, "bootstrap": bootstrap}


def _send_control(control, key, message):
    from .kafka import Sink
    with Sink(control["topic"], control["bootstrap"]) as s:
        s.send(json.dumps(message, sort_keys=True), keys=key)


def _announce(control, name, alias, version, gen):
    """The promotion on the control topic, after it is in the store (a
    runner that reads the message must find it there)."""
    control = _control_of(control)
    if control is None:
        return
    _send_control(control, f"{name}@{alias}",
                  {"model": name, "alias": alias, "version": version,
                   "generation": gen, "action": "deploy"})


def retire(name: str, alias: str = "champion", reason: str = "",
           control: Any = None) -> None:
    """Ask the runners serving name@alias to stop serving it: announced on
    the control topic ({"model", "alias", "action": "retire", "reason"},
    keyed name@alias; control as for promote, or the environment's). A
    runner whose bundle follows name@alias ends as on SIGTERM (a last
    checkpoint, outputs flushed, offsets committed, exit 0); one whose
    shadow or canary does stops scoring with it; a multitenant runner
    whose template gives name@alias for a tenant ("shop-{}@champion" and
    "shop-s1") retires that tenant alone (its events become dead letters,
    the others are served on) until name@alias is promoted again. Each
    writes "retired" to the deployment log. Runners started after the message are not
    stopped by it; promoting again announces a deploy that supersedes it
    on a compacted topic."""
    _check_name(name)
    if not isinstance(alias, str) or not alias or "@" in alias:
        raise _sw.InvalidArgument(f"alias={alias!r}: a name such as "
                                  "'champion'")
    control = _control_of(control)
    if control is None:
        raise _sw.InvalidArgument(
            "retire is announced on a control topic: give control={"
            "'topic': ..., 'bootstrap': ...} or set STREAMWISE_CONTROL_TOPIC "
            "and STREAMWISE_KAFKA_BOOTSTRAP")
    _send_control(control, f"{name}@{alias}",
                  {"model": name, "alias": alias, "action": "retire",
                   "reason": str(reason)})


def _versions_text(con, name):
    vs = [str(v) for (v,) in con.execute(
        "SELECT version FROM model_versions WHERE name = ? ORDER BY version",
        (name,))]
    return ", ".join(vs) or "none"


def _parse_ref(ref):
    name, _, sel = ref.partition("@")
    _check_name(name)
    return name, sel


def resolve(ref: str, at: _dt.datetime | float | None = None,
            store: StoreLike = None, verify: bool = True) -> Resolved:
    """``name@alias``, ``name@<version>`` or ``name`` (the latest version)
    -> Resolved(path, sha256, version). With ``at`` (a datetime or unix
    seconds), the version the alias pointed to at that moment, from the
    promotion log. The file's SHA-256 is checked against the registry."""
    name, sel = _parse_ref(ref)
    st = get_store(store)
    if sel.isdigit():
        version = int(sel)
    elif not sel:
        version = st.read("SELECT max(version) FROM model_versions WHERE "
                          "name = ?", (name,))[0][0]
    elif at is not None:
        t = at.timestamp() if isinstance(at, _dt.datetime) else float(at)
        row = st.read("SELECT new_version FROM promotions WHERE name = ? AND "
                      "alias = ? AND at <= ? ORDER BY generation DESC "
                      "LIMIT 1", (name, sel, t))
        version = row[0][0] if row else None
    else:
        row = st.read("SELECT version FROM aliases WHERE name = ? AND "
                      "alias = ?", (name, sel))
        version = row[0][0] if row else None
    if version is None:
        raise _sw.InvalidArgument(f"resolve: {ref!r} names no version in "
                                  f"{st.name}")
    row = st.read("SELECT path, sha256 FROM model_versions WHERE name = ? "
                  "AND version = ?", (name, version))
    if not row:
        raise _sw.InvalidArgument(f"resolve: {name} has no version {version}")
    path, digest = st.abspath(row[0][0]), row[0][1]
    if verify:
        with open(path, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
        if actual != digest:
            raise _sw.FormatError(f"resolve: {path} has SHA-256 {actual}, the "
                                  f"registry recorded {digest}: the file was "
                                  f"changed after registration")
    return Resolved(path, digest, version)


def history(name: str, store: StoreLike = None) -> pandas.DataFrame:
    """The promotion log of a model, oldest first, as a DataFrame."""
    import pandas as pd
    st = get_store(store)
    rows = st.read("SELECT generation, at, alias, old_version, new_version, "
                   "who, reason, evidence FROM promotions WHERE name = ? "
                   "ORDER BY generation", (name,))
    df = pd.DataFrame(rows, columns=["generation", "at", "alias",
                                     "old_version", "new_version", "who",
                                     "reason", "evidence"])
    df["at"] = pd.to_datetime(df["at"], unit="s")
    df["evidence"] = [json.loads(e) for e in df["evidence"]]
    return df


def deployments(name: str, store: StoreLike = None) -> pandas.DataFrame:
    """The deployment log of a model, oldest first, as a DataFrame: what
    each runner actually served (status "serving": it switched to that
    version) and what it refused, with the reason. Runners write it
    themselves (``sw-serve run`` following ``name@alias``)."""
    import pandas as pd
    st = get_store(store)
    rows = st.read("SELECT at, runner, ref, version, sha256, status, reason "
                   "FROM deployments WHERE name = ? ORDER BY at, "
                   "deployment_id", (name,))
    df = pd.DataFrame(rows, columns=["at", "runner", "ref", "version",
                                     "sha256", "status", "reason"])
    df["at"] = pd.to_datetime(df["at"], unit="s")
    return df


def versions(name: str, store: StoreLike = None) -> pandas.DataFrame:
    """Every registered version of a model, with its aliases."""
    import pandas as pd
    st = get_store(store)
    rows = st.read("SELECT version, sha256, size, created, created_by, "
                   "source_run, source FROM model_versions WHERE name = ? "
                   "ORDER BY version", (name,))
    df = pd.DataFrame(rows, columns=["version", "sha256", "size", "created",
                                     "created_by", "source_run", "source"])
    # a runner's learned snapshot records its lineage as JSON: the parent
    # version, the pairs learned, the outcome offsets learned from
    df["lineage"] = [json.loads(x) if isinstance(x, str) and
                     x.startswith("{") else None for x in df["source"]]
    df["created"] = pd.to_datetime(df["created"], unit="s")
    aliases: dict[int, list[str]] = {}
    for alias, v in st.read("SELECT alias, version FROM aliases WHERE "
                            "name = ?", (name,)):
        aliases.setdefault(v, []).append(alias)
    df["aliases"] = [",".join(sorted(aliases.get(v, []))) for v in
                     df["version"]]
    return df


def list_models(store: StoreLike = None) -> pandas.DataFrame:
    """Registered models: name, latest version, aliases."""
    import pandas as pd
    st = get_store(store)
    rows = st.read("SELECT name, max(version), count(*) FROM model_versions "
                   "GROUP BY name ORDER BY name")
    out = []
    for name, latest, n in rows:
        al = st.read("SELECT alias, version FROM aliases WHERE name = ? "
                     "ORDER BY alias", (name,))
        out.append({"name": name, "latest": latest, "versions": n,
                    "aliases": " ".join(f"{a}={v}" for a, v in al)})
    return pd.DataFrame(out, columns=["name", "latest", "versions",
                                      "aliases"])


def copy_out(ref: str, dest: str | os.PathLike,
             store: StoreLike = None) -> str | os.PathLike:
    """Copy a resolved model to dest (a path), verified."""
    r = resolve(ref, store=store)
    shutil.copyfile(r.path, dest)
    return dest
