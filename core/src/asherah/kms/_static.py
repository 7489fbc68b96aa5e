"""The static KMS: system keys sealed with AES-256-GCM under a fixed 32-byte master key.

Byte-compatible with every Asherah implementation's static KMS. It is for tests and local
development: the master key sits in config or the environment.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from pydantic import BaseModel, ConfigDict, SecretStr

from asherah._driver_context import DriverContext
from asherah._errors import ConfigError, KmsError
from asherah.hazmat import aead
from asherah.hazmat.memory import decrypt_into_with
from asherah.kms._base import Buffer, KeyManagementService

_log = logging.getLogger("asherah.kms.static")
_warned = threading.Event()

ENV_VAR = "STATIC_MASTER_KEY_HEX"
_HEX = re.compile(r"[0-9a-fA-F]*")
#: The reference's public test key (ASCII "thisIsAStaticMasterKeyForTesting"), used by
#: ``KMS = "test-debug-static"`` when no key is configured. Never a secret.
TEST_DEBUG_STATIC_MASTER_KEY_HEX = (
    "746869734973415374617469634d61737465724b6579466f7254657374696e67"
)


class StaticKmsOptions(BaseModel):
    """``master_key_hex`` (64 hex digits) or ``master_key_file`` (a file holding them);
    with neither, the ``STATIC_MASTER_KEY_HEX`` environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master_key_hex: SecretStr | None = None
    master_key_file: Path | None = None


def decode_master_key_hex(text: str, source: str = ENV_VAR) -> bytearray:
    """Decode a hex master key with the reference's error messages, into a wipeable buffer."""
    if len(text) % 2:
        raise ConfigError(f"{source} has odd length ({len(text)}) — must be even")
    if not _HEX.fullmatch(text):  # one C call; the loop below only finds the position
        for i, ch in enumerate(text):
            if ch not in "0123456789abcdefABCDEF":
                raise ConfigError(f"{source} contains invalid hex at position {i}")
    key = bytearray.fromhex(text)
    if len(key) != aead.KEY_SIZE:
        size = len(key)
        key[:] = bytes(size)
        raise ConfigError(f"invalid key size {size}, must be 32 bytes")
    return key


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read master key file {str(path)!r}: {exc.__class__.__name__}"
        ) from None


class StaticKeyManagementService(KeyManagementService):
    """Seals system keys under one master key held in process memory."""

    Options = StaticKmsOptions

    def __init__(self, master_key: Buffer) -> None:
        if len(master_key) != aead.KEY_SIZE:
            raise ConfigError(f"invalid key size {len(master_key)}, must be 32 bytes")
        self._cipher = aead.cipher(master_key)
        if not _warned.is_set():
            _warned.set()
            _log.warning(
                "Using static master key. This is for testing only — do NOT use in production."
            )

    def __repr__(self) -> str:
        return "StaticKeyManagementService(master_key=<hidden>)"

    @classmethod
    def options_from_config(cls, config: Any) -> dict[str, Any]:
        hex_key = getattr(config, "static_master_key_hex", None)
        return {} if hex_key is None else {"master_key_hex": hex_key}

    @classmethod
    def from_options(cls, options: Any, context: DriverContext) -> Self:
        assert isinstance(options, StaticKmsOptions)  # noqa: S101 - the loader validated it
        if options.master_key_hex is not None and options.master_key_hex.get_secret_value():
            text, source = options.master_key_hex.get_secret_value(), "StaticMasterKeyHex"
        elif options.master_key_file is not None:
            text, source = _read_key_file(options.master_key_file), str(options.master_key_file)
        else:
            text, source = os.environ.get(ENV_VAR, ""), ENV_VAR
        if not text and getattr(context.config, "kms", None) == "test-debug-static":
            text, source = TEST_DEBUG_STATIC_MASTER_KEY_HEX, "TEST_DEBUG_STATIC_MASTER_KEY_HEX"
        if not text:
            raise ConfigError(
                "StaticMasterKeyHex (or the STATIC_MASTER_KEY_HEX environment variable) "
                "is required when KMS=static"
            )
        key = decode_master_key_hex(text.strip(), source)
        try:
            return cls(key)
        finally:
            key[:] = bytes(len(key))

    def drift_identity(self) -> dict[str, Any]:
        return {"kind": "static"}

    def encrypt_key(self, key: Buffer) -> bytes:
        try:
            return aead.seal_with(self._cipher, key)
        except aead.AeadError as exc:
            raise KmsError(f"static KMS encrypt_key failed: {exc}") from None

    def decrypt_key(self, blob: bytes) -> bytearray:
        # Straight into a wipeable buffer: no immutable ``bytes`` copy of the system key.
        if len(blob) != aead.KEY_SIZE + aead.OVERHEAD:
            raise KmsError("static KMS decrypt_key failed: a wrapped key must be 60 bytes")
        view = memoryview(blob)
        out = bytearray(aead.KEY_SIZE)
        try:
            decrypt_into_with(self._cipher, view[-aead.NONCE_SIZE :], view[: -aead.NONCE_SIZE], out)
        except InvalidTag:
            raise KmsError("static KMS decrypt_key failed: authentication failed") from None
        return out
