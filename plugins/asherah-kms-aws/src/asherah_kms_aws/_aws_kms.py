"""The ``aws`` KMS: system keys in the canonical multi-region AWS KMS envelope.

Wrapping a system key: ``GenerateDataKey(AES_256)`` in the preferred region (the next region in
decrypt order when that fails), the system key sealed with AES-256-GCM under the data key, then
``Encrypt`` of the data key in every other region in parallel. Unwrapping: ``Decrypt`` in the
preferred region first, then the other regions in name order, skipping regions the envelope
lacks; the first region whose data key opens the system key wins.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from asherah import ConfigError, KmsError
from asherah._config import describe_validation_error
from asherah._driver_context import DriverContext
from asherah.hazmat import aead
from asherah.hazmat.memory import decrypt_into, wipe
from asherah.kms import KeyManagementService
from asherah_kms_aws._clients import aws_session, close_client, make_client, resolve_region
from asherah_kms_aws._envelope import EnvelopeFormatError, KmsEnvelope, RegionalKek
from asherah_kms_aws._errors import BOTO_ERRORS, AwsKmsError, RegionFailure, describe, join
from asherah_kms_aws._options import AwsKmsOptions, aws_kms_options_from_config
from asherah_kms_aws._region_map import order_region_map

_log = logging.getLogger("asherah.kms.aws")

Buffer = bytes | bytearray | memoryview

_WHAT = "AWS KMS"


@dataclass(frozen=True, slots=True)
class RegionalKey:
    """One region's master key (ARN, key id or alias) and the boto3 KMS client reaching it."""

    region: str
    key_id: str
    client: Any


class _RegionFailed(Exception):
    def __init__(self, failure: RegionFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


class AwsKeyManagementService(KeyManagementService):
    """System keys wrapped by AWS KMS in one or more regions (``KMS = "aws"``).

    Build it from config (``RegionMap`` + ``PreferredRegion``, or ``KmsKeyId``), with
    :meth:`build` (``AwsKeyManagementService.build(region_map={...}, preferred_region=...)``),
    or around your own clients: ``AwsKeyManagementService([RegionalKey(region, arn, client),
    ...], preferred_region=...)``. Clients and the worker threads for the parallel ``Encrypt``
    calls are created once; :meth:`close` stops the threads, and closes the clients only when
    the driver made them (``owns_clients``): clients you pass in stay yours.

    ``single_key`` / ``configured_region`` only shape :meth:`drift_identity`: the reference
    records a ``KmsKeyId`` configuration differently from a ``RegionMap`` one.
    """

    Options = AwsKmsOptions

    def __init__(
        self,
        keys: Sequence[RegionalKey],
        *,
        preferred_region: str | None = None,
        strict_regions: bool = False,
        single_key: bool = False,
        configured_region: str | None = None,
        owns_clients: bool = False,
    ) -> None:
        if not keys:
            raise ConfigError("AWS KMS needs at least one region and key")
        regions = [key.region for key in keys]
        if len(set(regions)) != len(regions):
            raise ConfigError(f"AWS KMS: a region appears twice in {regions}")
        _, preferred_region = order_region_map(
            {key.region: key.key_id for key in keys}, preferred_region
        )
        self.preferred_region = preferred_region
        self.strict_regions = strict_regions
        self._single_key = single_key
        self._configured_region = configured_region
        self._owns_clients = owns_clients
        #: ``kmsKeks`` order: by region name, as the reference writes it.
        self._by_name = tuple(sorted(keys, key=lambda k: k.region))
        #: Decrypt (and GenerateDataKey fallback) order: preferred, then by region name.
        self._order = tuple(
            sorted(self._by_name, key=lambda k: (k.region != preferred_region, k.region))
        )
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(
                max_workers=len(keys) - 1, thread_name_prefix="asherah-kms-aws"
            )
            if len(keys) > 1
            else None
        )
        self._closed = False
        self._close_lock = threading.Lock()

    # Construction from options -----------------------------------------------------------

    @classmethod
    def options_from_config(cls, config: Any) -> dict[str, Any]:
        return aws_kms_options_from_config(config)

    @classmethod
    def build(cls, **options: Any) -> Self:
        """Validate ``options`` (the names of :class:`AwsKmsOptions`) and build the driver."""
        try:
            validated = AwsKmsOptions.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(f"aws KMS options: {describe_validation_error(exc)}") from None
        return cls.from_options(validated)

    @classmethod
    def from_options(cls, options: Any, context: DriverContext | None = None) -> Self:
        assert isinstance(options, AwsKmsOptions)  # noqa: S101 - the loader validated it
        session = aws_session(options.profile_name, _WHAT)
        if options.region_map is not None:
            entries, preferred = order_region_map(options.region_map, options.preferred_region)
            single = False
        else:
            if not options.key_id:
                raise ConfigError(
                    "KMS_KEY_ID required for KMS=aws "
                    "(set KmsKeyId, or RegionMap and PreferredRegion for several regions)"
                )
            region = resolve_region(session, options.region, options.key_id)
            if not region:
                raise ConfigError(
                    "AWS KMS: no AWS region resolved for KmsKeyId; set AWS_REGION, "
                    "DynamoDBRegion or the kms option 'region'"
                )
            entries, preferred, single = [(region, options.key_id)], region, True
        unknown = sorted(set(options.endpoints) - {region for region, _ in entries})
        if unknown:
            raise ConfigError(f"AWS KMS: endpoints given for regions not configured: {unknown}")
        keys: list[RegionalKey] = []
        try:
            for region, key_id in entries:
                endpoint = options.endpoints.get(region) or options.endpoint
                client = make_client(session, "kms", region, endpoint, options, _WHAT)
                keys.append(RegionalKey(region, key_id, client))
            return cls(
                keys,
                preferred_region=preferred,
                strict_regions=options.strict_regions,
                single_key=single,
                configured_region=options.region if single else None,
                owns_clients=True,
            )
        except BaseException:
            for key in keys:
                close_client(key.client)
            raise

    # Introspection -------------------------------------------------------------------------

    @property
    def regions(self) -> tuple[str, ...]:
        """Configured regions in decrypt order: the preferred one first, then by name."""
        return tuple(key.region for key in self._order)

    def drift_identity(self) -> dict[str, Any]:
        """The reference's ``kms_identity``: ``aws-kms-single`` for a ``KmsKeyId`` setup
        (``region`` = the configured region, ``None`` when the chain chose it), else
        ``aws-kms-envelope`` with the sorted region map."""
        if self._single_key:
            return {
                "kind": "aws-kms-single",
                "key_id": self._by_name[0].key_id,
                "region": self._configured_region,
            }
        return {
            "kind": "aws-kms-envelope",
            "preferred_region": self.preferred_region,
            "regions": {key.region: key.key_id for key in self._by_name},
        }

    def __repr__(self) -> str:
        return (
            f"AwsKeyManagementService(regions={list(self.regions)!r}, "
            f"preferred_region={self.preferred_region!r}, strict_regions={self.strict_regions})"
        )

    # Wrapping ------------------------------------------------------------------------------

    def encrypt_key(self, key: Buffer) -> bytes:
        self._check_open()
        data_key, generated, kek, failures = self._generate_data_key()
        keks: dict[str, RegionalKek] = {generated.region: kek}
        try:
            try:
                encrypted_key = aead.seal(data_key, key)
            except aead.AeadError as exc:
                raise KmsError(f"AWS KMS encrypt_key: {exc}") from None
            others = [k for k in self._by_name if k is not generated]
            for region_key, outcome in self._wrap_everywhere(others, data_key):
                if isinstance(outcome, RegionFailure):
                    failures[region_key.region] = outcome
                else:
                    keks[region_key.region] = outcome
                    failures.pop(region_key.region, None)
        finally:
            wipe(data_key)
        missing = [failures[k.region] for k in self._by_name if k.region not in keks]
        if missing and self.strict_regions:
            raise AwsKmsError(
                "AWS KMS encrypt_key: strict_regions is set and the data key could not be "
                f"wrapped in every region ({join(missing)})",
                missing,
            )
        if missing:
            _log.warning(
                "AWS KMS: new system key envelope leaves out region(s) %s (%s); "
                "it opens only in %s",
                [f.region for f in missing],
                join(missing),
                sorted(keks),
            )
        envelope = KmsEnvelope(
            encrypted_key, tuple(keks[k.region] for k in self._by_name if k.region in keks)
        )
        return envelope.to_json()

    def _generate_data_key(
        self,
    ) -> tuple[bytearray, RegionalKey, RegionalKek, dict[str, RegionFailure]]:
        """A fresh data key from the first region (in decrypt order) that answers."""
        failures: dict[str, RegionFailure] = {}
        for region_key in self._order:
            try:
                response = region_key.client.generate_data_key(
                    KeyId=region_key.key_id, KeySpec="AES_256"
                )
            except BOTO_ERRORS as exc:
                failures[region_key.region] = describe(region_key.region, "GenerateDataKey", exc)
                continue
            data_key = bytearray(response.get("Plaintext") or b"")
            blob = response.get("CiphertextBlob") or b""
            arn = response.get("KeyId") or region_key.key_id
            del response
            if len(data_key) != aead.KEY_SIZE or not blob:
                wipe(data_key)
                failures[region_key.region] = RegionFailure(
                    region_key.region, "GenerateDataKey", "InvalidResponse", "no 32-byte data key"
                )
                continue
            if failures:
                _log.warning(
                    "AWS KMS: GenerateDataKey failed in %s (%s); data key generated in %s",
                    sorted(failures),
                    join(list(failures.values())),
                    region_key.region,
                )
            return data_key, region_key, RegionalKek(region_key.region, arn, blob), failures
        listed = list(failures.values())
        raise AwsKmsError(
            f"AWS KMS encrypt_key: GenerateDataKey failed in every region ({join(listed)})",
            listed,
        )

    def _wrap_everywhere(
        self, keys: Sequence[RegionalKey], data_key: bytearray
    ) -> list[tuple[RegionalKey, RegionalKek | RegionFailure]]:
        """``Encrypt`` the data key in each of ``keys``, in parallel; waits for every call."""
        if not keys:
            return []
        assert self._pool is not None  # noqa: S101 - a pool exists whenever there are 2+ regions
        try:
            futures = [(k, self._pool.submit(self._wrap_in, k, data_key)) for k in keys]
        except RuntimeError:  # the pool was shut down by close()
            raise KmsError("AWS KMS encrypt_key: the KMS driver is closed") from None
        concurrent.futures.wait([future for _, future in futures])
        results: list[tuple[RegionalKey, RegionalKek | RegionFailure]] = []
        for region_key, future in futures:
            try:
                results.append((region_key, future.result()))
            except _RegionFailed as failed:
                results.append((region_key, failed.failure))
        return results

    @staticmethod
    def _wrap_in(region_key: RegionalKey, data_key: bytearray) -> RegionalKek:
        try:
            response = region_key.client.encrypt(KeyId=region_key.key_id, Plaintext=data_key)
        except BOTO_ERRORS as exc:
            raise _RegionFailed(describe(region_key.region, "Encrypt", exc)) from None
        blob = response.get("CiphertextBlob")
        if not blob:
            raise _RegionFailed(
                RegionFailure(region_key.region, "Encrypt", "InvalidResponse", "no ciphertext")
            )
        return RegionalKek(region_key.region, region_key.key_id, blob)

    # Unwrapping ----------------------------------------------------------------------------

    def decrypt_key(self, blob: bytes) -> bytearray:
        self._check_open()
        try:
            envelope = KmsEnvelope.from_json(blob)
        except EnvelopeFormatError as exc:
            raise KmsError(f"AWS KMS decrypt_key: invalid KMS envelope JSON ({exc})") from None
        if len(envelope.encrypted_key) < aead.OVERHEAD:
            raise KmsError("AWS KMS decrypt_key: invalid KMS envelope (encryptedKey too short)")
        failures: list[RegionFailure] = []
        for region_key in self._order:
            kek = envelope.kek_for(region_key.region)
            if kek is None:
                continue
            key = self._unwrap_in(region_key, kek, envelope.encrypted_key, failures)
            if key is not None:
                if failures:
                    _log.warning(
                        "AWS KMS: system key opened in %s after %s failed (%s)",
                        region_key.region,
                        [f.region for f in failures],
                        join(failures),
                    )
                return key
        if not failures:
            raise AwsKmsError(
                "AWS KMS decrypt_key: all KMS backends failed to decrypt (no matching regions "
                f"found: the envelope has {list(envelope.regions)}, configured are "
                f"{list(self.regions)})"
            )
        raise AwsKmsError(
            f"AWS KMS decrypt_key: all KMS backends failed to decrypt ({join(failures)})",
            failures,
        )

    @staticmethod
    def _unwrap_in(
        region_key: RegionalKey,
        kek: RegionalKek,
        encrypted_key: bytes,
        failures: list[RegionFailure],
    ) -> bytearray | None:
        region = region_key.region
        try:
            response = region_key.client.decrypt(
                KeyId=region_key.key_id, CiphertextBlob=kek.encrypted_kek
            )
        except BOTO_ERRORS as exc:
            failures.append(describe(region, "Decrypt", exc))
            _log.debug("AWS KMS: Decrypt failed in %s", region, exc_info=True)
            return None
        data_key = bytearray(response.get("Plaintext") or b"")
        del response
        view = memoryview(encrypted_key)
        out = bytearray(len(view) - aead.OVERHEAD)
        try:
            decrypt_into(data_key, view[-aead.NONCE_SIZE :], view[: -aead.NONCE_SIZE], out)
        except (InvalidTag, ValueError):
            failures.append(
                RegionFailure(
                    region, "Decrypt", "KeyMismatch", "the region's data key does not open it"
                )
            )
            return None
        finally:
            wipe(data_key)
        return out

    # Lifecycle -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KmsError("AWS KMS: the KMS driver is closed")

    def close(self) -> None:
        """Stop the worker threads and close the clients this driver created. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._owns_clients:
            for key in self._by_name:
                close_client(key.client)
