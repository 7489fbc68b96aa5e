"""The command line shared by every benchmark entry point: options, header, table, exit code."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

from benchmarks import _reference
from benchmarks._table import Row, render, write_json


@dataclass(frozen=True)
class Context:
    """What every scenario gets: the run mode and the loaded reference module."""

    quick: bool
    reference: ModuleType


Scenario = Callable[[Context], list[Row]]


def _parser(scenarios: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Compare our engine with the reference asherah 0.5.56 and a minimal floor."
    )
    parser.add_argument("--quick", action="store_true", help="smoke run (well under 60 s)")
    parser.add_argument(
        "--reference",
        metavar="PATH",
        help=f"reference install (default: ${_reference.ENV_VAR}, else {_reference.DEFAULT_PATH})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument(
        "--scenario", action="append", choices=scenarios, help="run only these (repeatable)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed (noisy machines!)"
    )
    return parser


def _versions(reference: ModuleType) -> dict[str, object]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=_reference.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "commit": git.stdout.strip() or "?",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in load],
        "asherah (ours)": version("asherah"),
        "reference": reference.version(),
        "cryptography": version("cryptography"),
        "pybase64": version("pybase64"),
        "orjson": version("orjson"),
    }


def main(scenarios: Mapping[str, Scenario], argv: Sequence[str] | None = None) -> int:
    args = _parser(list(scenarios)).parse_args(argv)
    # The static KMS and memory metastore warn that they are for tests; that is the point here.
    logging.getLogger("asherah").setLevel(logging.ERROR)
    try:
        reference = _reference.load(args.reference)
    except _reference.ReferenceNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = _versions(reference) | {"mode": "quick" if args.quick else "full"}
    print(" ".join(f"{k}={v}" for k, v in meta.items()), flush=True)
    context = Context(quick=args.quick, reference=reference)
    started = time.perf_counter()
    rows: list[Row] = []
    for name in args.scenario or list(scenarios):
        rows.extend(scenarios[name](context))
    meta["seconds"] = round(time.perf_counter() - started, 1)
    print(render(rows))
    print(f"elapsed: {meta['seconds']} s")
    if args.json:
        write_json(rows, args.json, meta)
    return 1 if args.strict and not all(row.met for row in rows) else 0
