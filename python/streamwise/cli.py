"""The ``streamwise`` command line.

    streamwise inspect FILE...
    streamwise export-c MODEL.swm [--out DIR] [--name NAME]
                        [--trees-per-file N]
    streamwise runs list [--experiment E] [--filter F] [--order-by X] [--max N]
    streamwise runs show RUN
    streamwise runs compare RUN RUN... [--metric M]
    streamwise models list
    streamwise models versions NAME
    streamwise models history NAME
    streamwise models promote NAME VERSION --reason WHY [--alias A]
                              [--evidence JSON]
    streamwise models resolve NAME@ALIAS

Every command that reads the tracking store takes --store DIR|URI (a
directory, or postgresql://user@host/db; default $STREAMWISE_TRACKING_URI
or ./streamwise-runs).
"""
from __future__ import annotations

import argparse
import json
import sys


def _table(df, columns=None, empty="(none)"):
    if df is None or len(df) == 0:
        return empty + "\n"
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    return df.to_string(index=False) + "\n"


def _short_times(df):
    for c in ("start_time", "end_time", "at", "created"):
        if c in df.columns:
            df[c] = df[c].dt.strftime("%Y-%m-%d %H:%M:%S")
    return df


def _inspect(args):
    from . import inspect
    for path in args.files:
        sys.stdout.write(inspect(path))
    return 0


def _export_c(args):
    import os
    from .learners import load
    est = load(args.model)
    if not hasattr(est, "export_c"):
        sys.stderr.write(f"{args.model}: only gbdt models export to C\n")
        return 2
    os.makedirs(args.out, exist_ok=True)
    for path in est.export_c(args.out, name=args.name,
                             trees_per_file=args.trees_per_file):
        print(path)
    return 0


def _runs_list(args):
    from . import track
    df = track.search_runs(args.filter, order_by=args.order_by,
                           max_results=args.max, experiment=args.experiment,
                           store=args.store)
    if len(df):
        df = _short_times(df.copy())
        df["run_id"] = df["run_id"].str[:8]
        keep = ["run_id", "experiment", "name", "status", "start_time"]
        keep += sorted(c for c in df.columns if c.startswith("metrics."))
        keep += sorted(c for c in df.columns if c.startswith("params."))
        df = df[keep]
    sys.stdout.write(_table(df, empty="no runs"))
    return 0


def _runs_show(args):
    from . import track
    info = track.get_run(args.run, store=args.store)
    for key in ("run_id", "experiment", "name", "status", "start_time",
                "end_time", "parent_id", "user", "host", "git_commit",
                "git_dirty", "streamwise_version", "core_build", "seed"):
        if key in info:
            print(f"{key:19s} {info[key]}")
    for section in ("params", "tags"):
        print(f"\n{section}")
        for k, v in sorted(info[section].items()):
            print(f"  {k:24s} {v}")
    print("\nmetrics                    last          min          max        n")
    for k, m in sorted(info["metrics"].items()):
        print(f"  {k:20s} {m['last']:12.6g} {m['min']:12.6g} "
              f"{m['max']:12.6g} {m['n']:8d}")
    print("\ninputs")
    for i in info["inputs"]:
        print(f"  {i['kind']}: {json.dumps(i['slice'], sort_keys=True)}")
    print("\nartifacts")
    for a in info["artifacts"]:
        print(f"  {a}")
    return 0


def _runs_compare(args):
    import pandas as pd
    from . import track
    infos = [track.get_run(r, store=args.store) for r in args.runs]
    rows = {}
    for info in infos:
        col = f"{info['name']} ({info['run_id'][:8]})"
        rows.setdefault("status", {})[col] = info["status"]
        for k, v in info["params"].items():
            rows.setdefault(f"params.{k}", {})[col] = v
        for k, m in info["metrics"].items():
            if args.metric and k not in args.metric:
                continue
            rows.setdefault(f"metrics.{k} (last)", {})[col] = m["last"]
            rows.setdefault(f"metrics.{k} (max)", {})[col] = m["max"]
    df = pd.DataFrame(rows).T.fillna("")
    df.index.name = "field"
    sys.stdout.write(df.reset_index().to_string(index=False) + "\n")
    return 0


def _models_list(args):
    from . import registry
    sys.stdout.write(_table(registry.list_models(store=args.store),
                            empty="no registered models"))
    return 0


def _models_versions(args):
    from . import registry
    df = _short_times(registry.versions(args.name, store=args.store))
    df["sha256"] = df["sha256"].str[:16]
    sys.stdout.write(_table(df, empty=f"no versions of {args.name}"))
    return 0


def _models_history(args):
    """Promotions and deployments side by side, in time order: what people
    decided and what the runners did about it."""
    from . import registry
    df = registry.history(args.name, store=args.store)
    dep = registry.deployments(args.name, store=args.store)
    if len(df) == 0 and len(dep) == 0:
        print(f"no promotions of {args.name}")
        return 0
    events = [(row.at, 0, row) for row in df.itertuples(index=False)] + \
        [(row.at, 1, row) for row in dep.itertuples(index=False)]
    for at, kind, row in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            old = "-" if row.old_version is None or \
                row.old_version != row.old_version \
                else str(int(row.old_version))
            print(f"generation {row.generation}  {at:%Y-%m-%d %H:%M:%S}  "
                  f"{args.name}@{row.alias}: {old} -> {row.new_version}  "
                  f"by {row.who}")
            print(f"  reason:   {row.reason}")
            print(f"  evidence: {json.dumps(row.evidence, sort_keys=True)}")
        else:
            v = "?" if row.version != row.version or row.version is None \
                else str(int(row.version))
            print(f"deployment    {at:%Y-%m-%d %H:%M:%S}  {row.ref}: "
                  f"{row.status} version {v} on {row.runner}")
            print(f"  reason:   {row.reason}")
    return 0


def _models_promote(args):
    from . import registry
    evidence = json.loads(args.evidence) if args.evidence else {}
    gen = registry.promote(args.name, args.version, alias=args.alias,
                           reason=args.reason, evidence=evidence,
                           store=args.store)
    print(f"{args.name}@{args.alias} -> version {args.version} "
          f"(generation {gen})")
    return 0


def _models_resolve(args):
    from . import registry
    r = registry.resolve(args.ref, store=args.store)
    print(f"{r.path} {r.sha256} {r.version}")
    return 0


def _broker(args):
    import os
    from .kafka import broker_program
    prog = broker_program()
    argv = [prog, "--brokers", str(args.brokers), "--partitions",
            str(args.partitions)]
    for t in args.topic or []:
        argv += ["--topic", t]
    os.execv(prog, argv)


def _parser():
    parser = argparse.ArgumentParser(
        prog="streamwise",
        description="streamwise: machine learning on event streams")
    parser.add_argument("--version", action="store_true", dest="show_version",
                        help="print the core's build information")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("broker", help="run the embedded Kafka broker on "
                       "loopback (prints its bootstrap address)")
    p.add_argument("--partitions", type=int, default=4,
                   help="partitions of the --topic topics without a count")
    p.add_argument("--topic", action="append",
                   help="NAME or NAME:PARTITIONS to create (repeatable)")
    p.add_argument("--brokers", type=int, default=1)
    p.set_defaults(func=_broker)

    p = sub.add_parser("inspect", help="describe and verify .swm files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("export-c", help="write a gbdt .swm model as C "
                       "source (NAME_predict(const double *x))")
    p.add_argument("model", metavar="MODEL.swm")
    p.add_argument("--out", default=".", help="directory (made if absent)")
    p.add_argument("--name", default="model", help="C identifier prefix")
    p.add_argument("--trees-per-file", type=int, default=50)
    p.set_defaults(func=_export_c)

    def store_arg(q):
        q.add_argument("--store", default=None,
                       help="tracking store: a directory or a "
                            "postgresql://user@host/db URI (default "
                            "$STREAMWISE_TRACKING_URI or ./streamwise-runs)")

    runs = sub.add_parser("runs", help="tracked runs").add_subparsers(
        dest="what", required=True)
    q = runs.add_parser("list", help="runs, newest first")
    q.add_argument("--experiment")
    q.add_argument("--filter", help="e.g. \"metrics.acc > 0.9 AND "
                                    "params.model = 'pa'\"")
    q.add_argument("--order-by", action="append",
                   help="e.g. 'metrics.acc DESC' (repeatable)")
    q.add_argument("--max", type=int, default=50)
    store_arg(q)
    q.set_defaults(func=_runs_list)
    q = runs.add_parser("show", help="one run in full")
    q.add_argument("run", help="run id (a unique prefix will do)")
    store_arg(q)
    q.set_defaults(func=_runs_show)
    q = runs.add_parser("compare", help="runs side by side")
    q.add_argument("runs", nargs="+")
    q.add_argument("--metric", action="append")
    store_arg(q)
    q.set_defaults(func=_runs_compare)

    models = sub.add_parser("models", help="the model registry") \
        .add_subparsers(dest="what", required=True)
    q = models.add_parser("list", help="registered models")
    store_arg(q)
    q.set_defaults(func=_models_list)
    q = models.add_parser("versions", help="versions of a model")
    q.add_argument("name")
    store_arg(q)
    q.set_defaults(func=_models_versions)
    q = models.add_parser("history", help="the promotion and deployment "
                          "log of a model")
    q.add_argument("name")
    store_arg(q)
    q.set_defaults(func=_models_history)
    q = models.add_parser("promote", help="move an alias to a version")
    q.add_argument("name")
    q.add_argument("version", type=int)
    q.add_argument("--alias", default="champion")
    q.add_argument("--reason", required=True)
    q.add_argument("--evidence", help="JSON")
    store_arg(q)
    q.set_defaults(func=_models_promote)
    q = models.add_parser("resolve", help="name@alias -> path sha256 version")
    q.add_argument("ref")
    store_arg(q)
    q.set_defaults(func=_models_resolve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.show_version:
        from . import build_info
        print(build_info())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from . import Error
    try:
        return args.func(args)
    except Error as e:
        print(f"streamwise {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
