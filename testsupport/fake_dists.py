"""Installed-looking distributions made of a ``*.dist-info`` folder, for entry-point tests.

``importlib.metadata`` (and so stevedore and pluggy) finds them once their folder is on
``sys.path``; nothing is installed into the virtual environment.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from stevedore.extension import ExtensionManager


def write_distribution(
    root: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str] | None = None,
) -> None:
    """Create distribution ``name`` under ``root`` with ``entry_points`` {group: {name: value}}
    and optional top-level ``modules`` {module name: source}."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(source)


@contextmanager
def on_sys_path(root: Path) -> Iterator[None]:
    """Put ``root`` first on ``sys.path`` for the duration, then drop the modules it added."""
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    # stevedore keeps each group's entry points for the life of the process (a public class
    # attribute); forget them so the new distribution is discovered, and again afterwards.
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    try:
        yield
    finally:
        ExtensionManager.ENTRY_POINT_CACHE.clear()
        sys.path.remove(str(root))
        for module in set(sys.modules) - before:
            origin = getattr(sys.modules[module], "__file__", None) or ""
            if origin.startswith(str(root)):
                del sys.modules[module]
