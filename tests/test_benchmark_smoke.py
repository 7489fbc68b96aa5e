"""The benchmark runs end to end (a smoke run; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    f"{size} {op}" for size in ("64 B", "1 KiB", "64 KiB", "1 MiB") for op in ("encrypt", "decrypt")
]


def _run_benchmark(module: str, *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.<module> --quick <args>`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.reference
def test_core_benchmark_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = _run_benchmark("bench_core", "--json", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == CASES
    assert all(value > 0 for row in rows for value in row["values"].values())
    assert {c["label"] for row in rows for c in row["checks"]} == {
        "ours/ref",
        "ours/floor",
        "floor/ref",
    }


def test_benchmark_fails_clearly_without_reference(tmp_path: Path) -> None:
    proc = _run_benchmark("bench_core", "--reference", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert "pip install --target" in proc.stderr


@pytest.mark.reference
def test_loop_benchmark_quick_run(tmp_path: Path) -> None:
    """Each implementation alone in its own process; ours with and without the malloc pad."""
    out = tmp_path / "loop.json"
    proc = _run_benchmark("bench_loop", "--json", str(out), timeout=180)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == CASES[4:]  # 64 KiB and 1 MiB
    assert all(set(row["values"]) == {"ours", "reference", "ours-no-pad"} for row in rows)
    assert all(value > 0 for row in rows for value in row["values"].values())
