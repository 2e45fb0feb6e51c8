"""CLI: ``python -m web2py_standin build [--framework gluon] OUT.zip``.

``--framework standin`` (the default) builds the TEST STAND-IN (not web2py); ``--framework gluon``
builds the TEST DISTRIBUTION made of web2py's real framework code from PyPI (gluon_dist.py).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from web2py_standin import STANDIN_VERSION, build_zip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m web2py_standin",
        description="Build a web2py test distribution: the stand-in (not web2py), or gluon.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the zip")
    build.add_argument("out", type=Path, help="output zip path, e.g. build/web2py_src.zip")
    build.add_argument(
        "--framework",
        choices=("standin", "gluon"),
        default="standin",
        help="standin: the hand-written TEST STAND-IN (default); "
        "gluon: web2py's gluon 2.26.1 from PyPI, with our entry texts and apps",
    )
    build.add_argument(
        "--wheel-cache",
        type=Path,
        default=None,
        help="gluon only: where the locked wheels are downloaded once (default build/wheels)",
    )
    version = sub.add_parser("version", help="print the VERSION line")
    version.add_argument("--framework", choices=("standin", "gluon"), default="standin")
    args = parser.parse_args(argv)
    if getattr(args, "wheel_cache", None) and args.framework != "gluon":
        parser.error("--wheel-cache goes with --framework gluon")
    if args.command == "version":
        if args.framework == "gluon":
            from web2py_standin.gluon_dist import GLUON_DIST_VERSION

            print(GLUON_DIST_VERSION)
        else:
            print(STANDIN_VERSION)
        return 0
    if args.framework == "gluon":
        # imported here: the default stand-in build must not depend on it
        from web2py_standin.gluon_dist import DEFAULT_WHEEL_CACHE, build_gluon_zip

        path = build_gluon_zip(args.out, args.wheel_cache or DEFAULT_WHEEL_CACHE)
    else:
        path = build_zip(args.out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
