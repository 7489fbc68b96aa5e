"""The ``asherah`` command line: encrypt/decrypt, config, doctor, key and metastore tools.

Every error is one line on stderr and a non-zero exit (1 for a failure, 2 for bad usage);
no command prints key material.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import click

from asherah._config import Config
from asherah._drivers import (
    KMS_GROUP,
    METASTORE_GROUP,
    canonical_name,
    driver_class,
    load_kms,
    load_metastore,
    validate_options,
)
from asherah._errors import AsherahError
from asherah._factory import SessionFactory
from asherah._key_ids import intermediate_key_id, system_key_id
from asherah._policy import CryptoPolicy
from asherah._records import EnvelopeKeyRecord
from asherah._settings import load_config
from asherah.metastore._base import Metastore


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except (AsherahError, OSError, ValueError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _config(ctx: click.Context) -> Config:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "config" not in obj:
        with _one_line_errors():
            obj["config"] = load_config(
                obj.get("config_file"),
                service_name=obj.get("service"),
                product_id=obj.get("product"),
            )
    config: Config = obj["config"]
    return config


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML (or YAML) config file; default $ASHERAH_CONFIG, else ./asherah.toml.",
)
@click.option("--service", help="Override service_name.")
@click.option("--product", help="Override product_id.")
@click.version_option(package_name="asherah")
@click.pass_context
def cli(
    ctx: click.Context, config_file: Path | None, service: str | None, product: str | None
) -> None:
    """Envelope encryption with automatic key rotation, compatible with Asherah."""
    ctx.ensure_object(dict).update(config_file=config_file, service=service, product=product)


@cli.command()
@click.option("--partition", "-p", required=True, help="Partition id (user, tenant, ...).")
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_context
def encrypt(ctx: click.Context, partition: str, source: BinaryIO) -> None:
    """Encrypt SOURCE (default stdin) and print the data row record (JSON)."""
    data = source.read()
    with _one_line_errors(), SessionFactory(_config(ctx)) as factory:
        record = factory.get_session(partition).encrypt_bytes(data)
    click.echo(record)


@cli.command()
@click.option("--partition", "-p", required=True, help="Partition id the record belongs to.")
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_context
def decrypt(ctx: click.Context, partition: str, source: BinaryIO) -> None:
    """Decrypt the data row record in SOURCE (default stdin) and write the plaintext."""
    record = source.read().strip()
    with _one_line_errors(), SessionFactory(_config(ctx)) as factory:
        plaintext = factory.get_session(partition).decrypt_bytes(record)
    sys.stdout.buffer.write(plaintext)
    sys.stdout.buffer.flush()


@cli.group("config")
def config_group() -> None:
    """Inspect the resolved configuration."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the resolved configuration (secrets masked) and the driver providers."""
    config = _config(ctx)
    with _one_line_errors():
        out: dict[str, Any] = {
            "config": json.loads(
                config.model_dump_json(
                    exclude_defaults=True, exclude={"kms_options", "metastore_options"}
                )
            ),
            "kms": _driver_summary(KMS_GROUP, config.kms, config.kms_options, config),
            "metastore": _driver_summary(
                METASTORE_GROUP, config.metastore, config.metastore_options, config
            ),
        }
    click.echo(json.dumps(out, indent=2, sort_keys=True))


def _driver_summary(
    group: str, name: str | None, section: dict[str, Any], config: Config
) -> dict[str, Any]:
    if not name:
        return {"type": None}
    entry = canonical_name(group, name)
    cls = driver_class(group, name)
    options = validate_options(cls, entry, section, config)
    return {
        "type": name,
        "driver": entry,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "distribution": _distribution_of(group, entry),
        "options": json.loads(options.model_dump_json()),
    }


def _distribution_of(group: str, entry: str) -> str | None:
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == group and ep.name == entry:
                return f"{dist.metadata['Name']} {dist.version}"
    return None


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check that the KMS and the metastore answer, and time one encrypt/decrypt round trip."""
    config = _config(ctx)
    steps: list[tuple[str, Callable[[], object]]] = []
    state: dict[str, Any] = {}

    def build() -> None:
        state["factory"] = SessionFactory(config)

    def kms_round_trip() -> None:
        kms = state["factory"].kms
        probe = bytes(range(32))
        if bytes(kms.decrypt_key(kms.encrypt_key(probe))) != probe:
            raise AsherahError("KMS round trip returned a different key")

    def metastore_read() -> None:
        state["factory"].metastore.load_latest(
            system_key_id(config.service_name, config.product_id, state["factory"].region_suffix)
        )

    def session_round_trip() -> None:
        session = state["factory"].get_session("asherah-doctor")
        if session.decrypt_bytes(session.encrypt_bytes(b"doctor")) != b"doctor":
            raise AsherahError("round trip returned different data")

    steps = [
        ("build drivers and check the config drift guard", build),
        ("KMS wraps and unwraps a key", kms_round_trip),
        ("metastore answers a read", metastore_read),
        ("encrypt and decrypt one record (partition 'asherah-doctor')", session_round_trip),
    ]
    try:
        for label, step in steps:
            started = time.perf_counter()
            try:
                step()
            except (AsherahError, OSError, ValueError) as exc:
                click.echo(f"FAIL  {label}: {type(exc).__name__}: {exc}")
                raise SystemExit(1) from None
            click.echo(f"ok    {label} ({(time.perf_counter() - started) * 1000:.1f} ms)")
    finally:
        if "factory" in state:
            state["factory"].close()


@cli.group()
def keys() -> None:
    """List, revoke and rewrap system and intermediate keys (never prints key material)."""


def _metastore(config: Config) -> Metastore:
    with _one_line_errors():
        return load_metastore(config)


@keys.command("list")
@click.option("--partition", "-p", help="Only this partition's intermediate keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def keys_list(ctx: click.Context, partition: str | None, as_json: bool) -> None:
    """List SK/IK rows: id, created, revoked, expired."""
    config = _config(ctx)
    policy = CryptoPolicy.from_config(config)
    now = int(time.time())
    metastore = _metastore(config)
    prefixes = (
        [intermediate_key_id(partition, config.service_name, config.product_id)]
        if partition
        else [
            f"_SK_{config.service_name}_{config.product_id}",
            "_IK_",
        ]
    )
    suffix = f"_{config.service_name}_{config.product_id}"
    with _one_line_errors():
        for prefix in prefixes:
            for key_id, created, record in metastore.list_rows(prefix):
                if prefix == "_IK_" and suffix not in key_id:
                    continue
                row = {
                    "id": key_id,
                    "created": created,
                    "revoked": bool(record.revoked),
                    "expired": policy.is_expired(created, now),
                }
                click.echo(json.dumps(row) if as_json else _row_text(row))
        metastore.close()


def _row_text(row: dict[str, Any]) -> str:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["created"]))
    flags = ",".join(f for f in ("revoked", "expired") if row[f]) or "-"
    return f"{row['id']}\t{row['created']} ({created}Z)\t{flags}"


@keys.command("revoke")
@click.option("--id", "key_id", help="Key id to revoke.")
@click.option("--created", type=int, help="Created of the row (default: the latest).")
@click.option("--partition", "-p", help="Revoke this partition's latest intermediate key.")
@click.option("--system", is_flag=True, help="Revoke the latest system key.")
@click.option("--yes", is_flag=True, help="Write the change (without it, a dry run).")
@click.pass_context
def keys_revoke(
    ctx: click.Context,
    key_id: str | None,
    created: int | None,
    partition: str | None,
    system: bool,
    yes: bool,
) -> None:
    """Mark a key ``Revoked: true``: new writes rotate to a fresh key; old data still decrypts."""
    config = _config(ctx)
    chosen = [x for x in (key_id, partition, system or None) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --id, --partition or --system")
    if partition:
        key_id = intermediate_key_id(partition, config.service_name, config.product_id)
    elif system:
        key_id = system_key_id(config.service_name, config.product_id)
    assert key_id is not None  # noqa: S101 - one of the three options set it
    metastore = _metastore(config)
    with _one_line_errors():
        record = (
            metastore.load(key_id, created)
            if created is not None
            else metastore.load_latest(key_id)
        )
        if record is None:
            raise AsherahError(f"no key row {key_id}" + (f" created={created}" if created else ""))
        if record.revoked:
            click.echo(f"{key_id} created={record.created} is already revoked")
            return
        if not yes:
            click.echo(f"dry run: would revoke {key_id} created={record.created} (add --yes)")
            return
        metastore.upsert(key_id, record.created, record.with_revoked(True))
        metastore.close()
    click.echo(f"revoked {key_id} created={record.created}")


@keys.command("rewrap-system-keys")
@click.option("--yes", is_flag=True, help="Write the rewrapped rows (without it, a dry run).")
@click.pass_context
def keys_rewrap(ctx: click.Context, yes: bool) -> None:
    """Re-wrap this service/product's system keys under the KMS's newest master key version
    (Vault Transit). Every row is rewrapped before the first one is written."""
    config = _config(ctx)
    sk_id = system_key_id(config.service_name, config.product_id)
    metastore = _metastore(config)
    with _one_line_errors():
        kms = load_kms(config)
        rewrap = getattr(kms, "rewrap_key", None)
        if rewrap is None:
            raise AsherahError(f"the {config.kms} KMS cannot rewrap keys")
        rows = [
            (key_id, created, record)
            for key_id, created, record in metastore.list_rows(sk_id)
            if key_id == sk_id or _is_region_suffixed(key_id, sk_id)
        ]
        rewrapped = (
            [
                (
                    key_id,
                    created,
                    EnvelopeKeyRecord(created, rewrap(record.encrypted_key), None, record.revoked),
                )
                for key_id, created, record in rows
            ]
            if yes
            else []
        )
        for key_id, created, record in rewrapped:
            metastore.upsert(key_id, created, record)
        kms.close()
        metastore.close()
    click.echo(f"{'rewrapped' if yes else 'dry run: would rewrap'} {len(rows)} system key(s)")


def _is_region_suffixed(key_id: str, base: str) -> bool:
    tail = key_id[len(base) + 1 :]
    return (
        key_id.startswith(base + "_")
        and bool(tail)
        and all(c.isdigit() or c == "-" or ("a" <= c <= "z") for c in tail)
    )


@cli.group("metastore")
def metastore_group() -> None:
    """Metastore administration."""


@metastore_group.command("init")
@click.pass_context
def metastore_init(ctx: click.Context) -> None:
    """Create the metastore table if it does not exist."""
    metastore = _metastore(_config(ctx))
    with _one_line_errors():
        try:
            metastore.create_schema()
        except NotImplementedError as exc:
            raise AsherahError(str(exc)) from None
        finally:
            metastore.close()
    click.echo("metastore ready")


def main() -> None:
    cli(prog_name="asherah")
