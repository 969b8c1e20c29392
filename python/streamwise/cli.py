"""The ``streamwise`` command line."""
import argparse
import sys


def _inspect(args):
    from . import inspect
    for path in args.files:
        sys.stdout.write(inspect(path))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="streamwise",
        description="streamwise: machine learning on event streams")
    parser.add_argument("--version", action="store_true",
                        help="print the core's build information")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("inspect", help="describe and verify .swm files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(run=_inspect)
    args = parser.parse_args(argv)
    if args.version:
        from . import build_info
        print(build_info())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from . import Error
    try:
        return args.run(args)
    except Error as e:
        print(f"streamwise {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
