"""CLI: ``python -m web2py_standin build OUT.zip`` (a TEST STAND-IN, not web2py)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from web2py_standin import STANDIN_VERSION, build_zip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m web2py_standin",
        description="Build a TEST STAND-IN for web2py_src.zip (not web2py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the stand-in zip")
    build.add_argument("out", type=Path, help="output zip path, e.g. build/web2py_src.zip")
    sub.add_parser("version", help="print the stand-in VERSION line")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(STANDIN_VERSION)
        return 0
    path = build_zip(args.out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
