"""`rwscaler crd`: print the CRD rendered from the models (or check the committed file matches)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rwscaler.render_crd import render_crd_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", type=Path, metavar="FILE", help="write the CRD to FILE instead of stdout")
    parser.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from the rendering"
    )


def run(args: argparse.Namespace) -> int:
    text = render_crd_yaml()
    if args.check is not None:
        if args.check.read_text() != text:
            print(f"{args.check} is out of date: run `rwscaler crd --write {args.check}`", file=sys.stderr)
            return 1
        return 0
    if args.write is not None:
        args.write.write_text(text)
        return 0
    sys.stdout.write(text)
    return 0
