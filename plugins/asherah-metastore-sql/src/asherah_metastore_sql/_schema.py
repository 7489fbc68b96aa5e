"""``create_schema()`` without a session factory: for deploy scripts and migrations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from asherah import ConfigError
from asherah._config import describe_validation_error
from asherah_metastore_sql._metastore import SqlMetastore
from asherah_metastore_sql._options import SqlMetastoreOptions


def create_schema(
    target: str | SqlMetastoreOptions | Mapping[str, Any] | None = None, **options: Any
) -> None:
    """Create the ``encryption_key`` table (``CREATE TABLE IF NOT EXISTS``) for the backend
    ``target`` names: a canonical connection string, an options model, or a dict of options.
    Keyword arguments are further options (``url`` for a SQLAlchemy URL, ``table_name``,
    ``db_type``, ``key_record_type``, ...). The same as ``asherah metastore init``."""
    if isinstance(target, SqlMetastoreOptions):
        raw: dict[str, Any] = target.model_dump(exclude_unset=True)
    elif isinstance(target, str):
        raw = {"connection_string": target}
    else:
        raw = dict(target or {})
    try:
        resolved = SqlMetastoreOptions.model_validate({**raw, **options})
    except ValidationError as exc:
        raise ConfigError(f"sql metastore options: {describe_validation_error(exc)}") from None
    metastore = SqlMetastore(resolved)
    try:
        metastore.create_schema()
    finally:
        metastore.close()
