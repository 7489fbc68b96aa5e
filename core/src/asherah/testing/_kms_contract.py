"""The key management service contract every KMS driver must pass."""

from __future__ import annotations

import os

import pytest

from asherah._errors import KmsError
from asherah.kms._base import KeyManagementService
from asherah.metastore._memory import InMemoryMetastore


class KmsContract:
    """Subclass in a ``Test*`` class and provide a ``kms`` fixture: a working driver.

    Drivers backed by a remote service also subclass :class:`KmsFailureContract`.
    """

    def test_round_trip_returns_a_wipeable_copy(self, kms: KeyManagementService) -> None:
        key = os.urandom(32)
        blob = kms.encrypt_key(key)
        assert isinstance(blob, bytes)
        assert key not in blob
        unwrapped = kms.decrypt_key(blob)
        assert isinstance(unwrapped, bytearray)
        assert bytes(unwrapped) == key

    def test_accepts_bytearray_and_memoryview(self, kms: KeyManagementService) -> None:
        key = bytearray(os.urandom(32))
        assert bytes(kms.decrypt_key(kms.encrypt_key(key))) == key
        assert bytes(kms.decrypt_key(kms.encrypt_key(memoryview(key)))) == key

    def test_wrapping_is_randomized(self, kms: KeyManagementService) -> None:
        key = os.urandom(32)
        assert kms.encrypt_key(key) != kms.encrypt_key(key)

    def test_tampered_blob_is_kms_error(self, kms: KeyManagementService) -> None:
        blob = bytearray(kms.encrypt_key(os.urandom(32)))
        blob[len(blob) // 2] ^= 0x01
        with pytest.raises(KmsError):
            kms.decrypt_key(bytes(blob))

    def test_garbage_blob_is_kms_error(self, kms: KeyManagementService) -> None:
        for garbage in (b"", b"\x00", b"not a wrapped key at all", os.urandom(80)):
            with pytest.raises(KmsError):
                kms.decrypt_key(garbage)

    def test_error_text_never_contains_the_key(self, kms: KeyManagementService) -> None:
        key = os.urandom(32)
        blob = bytearray(kms.encrypt_key(key))
        blob[-1] ^= 0x01
        with pytest.raises(KmsError) as info:
            kms.decrypt_key(bytes(blob))
        text = str(info.value) + repr(info.value) + repr(kms)
        assert key.hex() not in text
        assert key.hex().upper() not in text

    def test_session_round_trip_through_the_driver(self, kms: KeyManagementService) -> None:
        from asherah._factory import SessionFactory

        metastore = InMemoryMetastore()
        config = {"service_name": "contract", "product_id": "kms"}
        factory = SessionFactory(config, metastore=metastore, kms=kms)
        record = factory.get_session("bob").encrypt_bytes(b"kms contract")
        factory.close()
        # A new factory has no cached keys: the system key must come back through the KMS.
        fresh = SessionFactory(config, metastore=metastore, kms=kms)
        try:
            assert fresh.get_session("bob").decrypt_bytes(record) == b"kms contract"
        finally:
            fresh.close()


class KmsFailureContract:
    """For remote KMS drivers: provide ``broken_kms``, a driver whose service is unreachable
    or refuses (closed port, unknown key, no permission)."""

    def test_service_failure_is_kms_error(self, broken_kms: KeyManagementService) -> None:
        with pytest.raises(KmsError):
            broken_kms.encrypt_key(os.urandom(32))
        with pytest.raises(KmsError):
            broken_kms.decrypt_key(os.urandom(60))
