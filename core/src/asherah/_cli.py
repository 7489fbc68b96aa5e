"""The ``asherah`` command line (filled in by the plugin-framework work)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("asherah CLI: not yet available")
