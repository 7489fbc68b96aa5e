"""One result table for every benchmark scenario.

A scenario contributes :class:`Row` objects: named values (``ours``, ``reference``,
``floor``, or whatever it compares) and :class:`Check` objects (a ratio against a limit).
Columns are the union of value names and check labels in first-seen order, so a new scenario
(async calls, threads, secure-memory modes) adds rows, and columns only when it needs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Check:
    """``value`` must be at most ``limit`` (or at least, when ``at_least``).

    A check without a limit is shown for information and never counted.
    """

    label: str
    value: float
    limit: float | None = None
    at_least: bool = False

    @property
    def met(self) -> bool:
        if self.limit is None:
            return True
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def render(self) -> str:
        if self.limit is None:
            return f"{self.value:.2f}"
        sign = ">=" if self.at_least else "<="
        mark = "ok" if self.met else "MISS"
        return f"{self.value:.2f} {sign}{self.limit:g} {mark}"


@dataclass(frozen=True)
class Row:
    scenario: str
    case: str
    unit: str
    values: dict[str, float]
    checks: list[Check] = field(default_factory=list)
    spread: float = 0.0  # worst relative IQR among the values, a noise indicator

    @property
    def met(self) -> bool:
        return all(check.met for check in self.checks)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def render(rows: Sequence[Row]) -> str:
    """A plain-text table, one line per row, then a summary line of the checks."""
    value_names = _unique(name for row in rows for name in row.values)
    check_labels = _unique(check.label for row in rows for check in row.checks)
    header = ["scenario", "case", "unit", *value_names, *check_labels, "noise"]
    lines = [header]
    for row in rows:
        checks = {check.label: check.render() for check in row.checks}
        lines.append(
            [
                row.scenario,
                row.case,
                row.unit,
                *(_number(row.values[n]) if n in row.values else "" for n in value_names),
                *(checks.get(label, "") for label in check_labels),
                f"{row.spread * 100:.0f}%",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for index, line in enumerate(lines):
        cells = [
            cell.ljust(width) if column < 3 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if index == 0:
            text.append("  ".join("-" * width for width in widths))
    every = [check for row in rows for check in row.checks if check.limit is not None]
    met = sum(check.met for check in every)
    text.append(f"targets met: {met}/{len(every)}")
    return "\n".join(text)


def write_json(rows: Sequence[Row], path: Path, meta: dict[str, object]) -> None:
    """Machine-readable results (for CI artefacts or trend tracking)."""
    payload = {
        "meta": meta,
        "rows": [
            asdict(row)
            | {"met": row.met, "checks": [asdict(c) | {"met": c.met} for c in row.checks]}
            for row in rows
        ],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
