"""The ``secrets-manager`` KMS: a 32-byte master key kept in AWS Secrets Manager.

System keys are sealed exactly as the ``static`` KMS seals them (AES-256-GCM,
``ct || tag || nonce``, under the master key), so a deployment moves from ``static`` to a
managed secret holding the same key without rewrapping anything, and back.
"""

from __future__ import annotations

import logging
import string
import threading
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from asherah import ConfigError, KmsError
from asherah._config import describe_validation_error
from asherah._driver_context import DriverContext
from asherah.hazmat import aead
from asherah.hazmat.memory import decrypt_into_with, wipe
from asherah.kms import KeyManagementService
from asherah_kms_aws._clients import aws_session, close_client, make_client, resolve_region
from asherah_kms_aws._errors import BOTO_ERRORS, AwsKmsError, describe
from asherah_kms_aws._options import (
    SecretsManagerKmsOptions,
    secrets_manager_options_from_config,
)

_log = logging.getLogger("asherah.kms.secrets_manager")

Buffer = bytes | bytearray | memoryview

_WHAT = "Secrets Manager KMS"
_HEX = frozenset(string.hexdigits)
#: Earlier secret values kept (per process) so system keys sealed before a refresh still open.
MAX_PREVIOUS_KEYS = 4


def decode_secret(secret_id: str, response: dict[str, Any]) -> bytearray:
    """The 32-byte master key in a ``GetSecretValue`` answer, in a wipeable buffer.

    ``SecretString`` wins: hex, trimmed, one optional ``0x``/``0X`` prefix, whitespace anywhere
    ignored. Otherwise ``SecretBinary`` must be exactly 32 bytes. Errors name the secret id and
    sizes or positions, never a character of the value.
    """
    text = response.get("SecretString")
    if text is not None:
        cleaned = text.strip()
        if cleaned[:2] in ("0x", "0X"):
            cleaned = cleaned[2:]
        cleaned = "".join(cleaned.split())
        if len(cleaned) % 2:
            raise KmsError(
                f"Secrets Manager secret {secret_id!r} has odd-length hex string "
                f"({len(cleaned)} chars after trim)"
            )
        for position, char in enumerate(cleaned):
            if char not in _HEX:
                raise KmsError(
                    f"Secrets Manager secret {secret_id!r} contains invalid hex at "
                    f"position {position}"
                )
        key = bytearray.fromhex(cleaned)
        if len(key) != aead.KEY_SIZE:
            size = len(key)
            wipe(key)
            raise KmsError(
                f"Secrets Manager secret {secret_id!r} decoded to {size} bytes, expected 32"
            )
        return key
    binary = response.get("SecretBinary")
    if binary is not None:
        if len(binary) != aead.KEY_SIZE:
            raise KmsError(
                f"Secrets Manager secret {secret_id!r}: SecretBinary is {len(binary)} bytes, "
                "expected 32"
            )
        return bytearray(binary)
    raise KmsError(
        f"Secrets Manager secret {secret_id!r} has neither SecretString nor SecretBinary"
    )


class SecretsManagerKeyManagementService(KeyManagementService):
    """Seals system keys under a master key read from AWS Secrets Manager
    (``KMS = "secrets-manager"``, ``SecretsManagerSecretId``).

    The secret is read once at construction (a failure there raises :class:`asherah.KmsError`
    naming the secret id). With ``refresh_interval`` a background thread re-reads it; when its
    version changes, new system keys use the new value and keys sealed under the values this
    process saw before still open. A process started after a change knows only the new value,
    so keep the old value readable (as ``static`` or a second secret) until every system key
    sealed under it has expired and been replaced.
    """

    Options = SecretsManagerKmsOptions

    def __init__(
        self,
        client: Any,
        secret_id: str,
        *,
        version_stage: str | None = None,
        refresh_interval: float | None = None,
        configured_region: str | None = None,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self.secret_id = secret_id
        self._version_stage = version_stage
        self._configured_region = configured_region
        self._owns_client = owns_client
        self._lock = threading.Lock()
        self._closed = threading.Event()
        cipher, self.version_id = self._fetch()
        #: The current key first, then up to MAX_PREVIOUS_KEYS earlier ones (newest first).
        self._ciphers: tuple[AESGCM, ...] = (cipher,)
        self._refresher: threading.Thread | None = None
        if refresh_interval is not None:
            self._refresher = threading.Thread(
                target=self._refresh_loop,
                args=(refresh_interval,),
                name="asherah-secrets-manager-refresh",
                daemon=True,
            )
            self._refresher.start()
        _log.info("Secrets Manager KMS: master key read from secret %r", secret_id)

    # Construction from options -----------------------------------------------------------

    @classmethod
    def options_from_config(cls, config: Any) -> dict[str, Any]:
        return secrets_manager_options_from_config(config)

    @classmethod
    def build(cls, **options: Any) -> Self:
        """Validate ``options`` (the names of :class:`SecretsManagerKmsOptions`) and build."""
        try:
            validated = SecretsManagerKmsOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(
                f"secrets-manager KMS options: {describe_validation_error(exc)}"
            ) from None
        return cls.from_options(validated)

    @classmethod
    def from_options(cls, options: Any, context: DriverContext | None = None) -> Self:
        assert isinstance(options, SecretsManagerKmsOptions)  # noqa: S101 - loader validated it
        if not options.secret_id:
            raise ConfigError(
                "SecretsManagerSecretId required for KMS=secrets-manager "
                "(or the kms option 'secret_id')"
            )
        session = aws_session(options.profile_name, _WHAT)
        region = resolve_region(session, options.region, options.secret_id)
        if not region:
            raise ConfigError(
                "Secrets Manager KMS: no AWS region resolved; set AWS_REGION or the kms "
                "option 'region'"
            )
        client = make_client(session, "secretsmanager", region, options.endpoint, options, _WHAT)
        try:
            return cls(
                client,
                options.secret_id,
                version_stage=options.version_stage,
                refresh_interval=options.refresh_interval,
                configured_region=options.region,
                owns_client=True,
            )
        except BaseException:
            close_client(client)
            raise

    # Reading the secret --------------------------------------------------------------------

    def _fetch(self) -> tuple[AESGCM, str | None]:
        request: dict[str, Any] = {"SecretId": self.secret_id}
        if self._version_stage:
            request["VersionStage"] = self._version_stage
        region = str(getattr(self._client.meta, "region_name", "") or "?")
        try:
            response = self._client.get_secret_value(**request)
        except BOTO_ERRORS as exc:
            failure = describe(region, "GetSecretValue", exc)
            raise AwsKmsError(
                f"Secrets Manager GetSecretValue failed for secret {self.secret_id!r} ({failure})",
                [failure],
            ) from None
        key = decode_secret(self.secret_id, response)
        version = response.get("VersionId")
        del response
        try:
            return aead.cipher(key), version
        finally:
            wipe(key)

    def refresh(self) -> bool:
        """Re-read the secret now; ``True`` when its version changed (new keys use it)."""
        cipher, version = self._fetch()
        with self._lock:
            if version == self.version_id:
                return False
            self._ciphers = (cipher, *self._ciphers)[: 1 + MAX_PREVIOUS_KEYS]
            self.version_id = version
        _log.info("Secrets Manager KMS: secret %r changed; new system keys use it", self.secret_id)
        return True

    def _refresh_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.refresh()
            except KmsError as exc:
                _log.warning(
                    "Secrets Manager KMS: refresh failed, keeping the current key: %s", exc
                )

    # The KMS interface ---------------------------------------------------------------------

    def drift_identity(self) -> dict[str, Any]:
        """The reference's ``secrets-manager`` identity (``region`` as configured, ``None``
        when the chain chose it, as in the reference's config path)."""
        return {
            "kind": "secrets-manager",
            "secret_id": self.secret_id,
            "region": self._configured_region,
        }

    def encrypt_key(self, key: Buffer) -> bytes:
        self._check_open()
        try:
            return aead.seal_with(self._ciphers[0], key)
        except aead.AeadError as exc:
            raise KmsError(f"Secrets Manager KMS encrypt_key failed: {exc}") from None

    def decrypt_key(self, blob: bytes) -> bytearray:
        self._check_open()
        if len(blob) < aead.OVERHEAD:
            raise KmsError("Secrets Manager KMS decrypt_key failed: ciphertext too short")
        view = memoryview(blob)
        out = bytearray(len(view) - aead.OVERHEAD)
        for cipher in self._ciphers:
            try:
                decrypt_into_with(cipher, view[-aead.NONCE_SIZE :], view[: -aead.NONCE_SIZE], out)
            except InvalidTag:
                continue
            return out
        raise KmsError(
            f"Secrets Manager KMS decrypt_key failed: no value of secret {self.secret_id!r} "
            "seen by this process opens this system key"
        )

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise KmsError("Secrets Manager KMS: the KMS driver is closed")

    def close(self) -> None:
        """Stop the refresh thread and close the client this driver created. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._refresher is not None:
            self._refresher.join()
        if self._owns_client:
            close_client(self._client)

    def __repr__(self) -> str:
        return (
            f"SecretsManagerKeyManagementService(secret_id={self.secret_id!r}, master_key=<hidden>)"
        )
