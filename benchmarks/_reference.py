"""Load the reference implementation (PyPI ``asherah`` 0.5.56) in-process under another name.

The reference and our package share the import name ``asherah``, so its native module is
loaded straight from its file as ``_asherah`` (the name its ``PyInit__asherah`` expects) and
never touches ``sys.modules["asherah"]``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

ENV_VAR = "ASHERAH_REFERENCE_PATH"
EXPECTED_VERSION = "0.5.56"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO_ROOT / ".reference"
INSTALL_HINT = (
    f".venv/bin/pip install --target {DEFAULT_PATH} asherah=={EXPECTED_VERSION}  "
    f"(or point --reference / {ENV_VAR} at a directory holding asherah/_asherah*.so)"
)


class ReferenceNotFoundError(RuntimeError):
    """The reference's native module is not where the benchmark was told to look."""


def resolve_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The path to look in: the argument, else ``$ASHERAH_REFERENCE_PATH``, else ``.reference/``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env) if from_env else DEFAULT_PATH


def find_native_module(path: Path) -> Path:
    """Accept the ``.so`` itself, the ``asherah`` package directory, or a ``--target`` root."""
    if path.is_file():
        return path
    for directory in (path, path / "asherah"):
        found = sorted(directory.glob("_asherah*.so")) if directory.is_dir() else []
        if found:
            return found[0]
    raise ReferenceNotFoundError(
        f"reference asherah {EXPECTED_VERSION} not found under {path}; install it with: "
        f"{INSTALL_HINT}"
    )


def load(explicit: str | os.PathLike[str] | None = None) -> ModuleType:
    """Import the reference's native module from its file and return it."""
    native = find_native_module(resolve_path(explicit))
    spec = importlib.util.spec_from_file_location("_asherah", native)
    if spec is None or spec.loader is None:
        raise ReferenceNotFoundError(f"{native} is not an importable extension module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise ReferenceNotFoundError(f"cannot import the reference from {native}: {exc}") from exc
    return module
