"""Command line: ``python -m rsdix <command>``.

    python -m rsdix data list [--root DIR]          registry and what is present
    python -m rsdix data check NAME [--root DIR]    verify a local copy against the registry
    python -m rsdix data download NAME [--root DIR] download and lay out (needs the internet)
"""
from __future__ import annotations

import argparse
import sys


def _data(args) -> int:
    from rsdix.data import registry

    if args.action == "list":
        present = set(registry.available(args.root))
        for info in registry.REGISTRY.values():
            mark = "present" if info.name in present else "-"
            print(f"{info.name:20s} {info.title:12s} {info.kind:15s} {str(info.images or '?'):>7s} images  {mark}")
        return 0
    if not args.name:
        print("error: give a dataset name (python -m rsdix data list)", file=sys.stderr)
        return 2
    if args.action == "check":
        from rsdix.data.check import check_dataset

        report = check_dataset(args.name, args.root, verify_images=not args.quick)
        print(report)
        return 0 if report.ok else 1
    if args.action == "download":
        path = registry.download(args.name, args.root)
        print(f"{args.name}: laid out at {path}")
        return 0
    return 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsdix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="dataset registry, checks and downloads")
    data.add_argument("action", choices=["list", "check", "download"])
    data.add_argument("name", nargs="?")
    data.add_argument("--root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    data.add_argument("--quick", action="store_true", help="check that files exist without decoding them")
    args = parser.parse_args(argv)
    from rsdix.errors import RsdixError

    try:
        if args.command == "data":
            return _data(args)
    except RsdixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
