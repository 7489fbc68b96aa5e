"""The ``aws`` driver against moto_server: two regions, one key each, aliases, regions down."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from awskms_testlib import (
    ACCESS_KEY_ID,
    ALIAS,
    OTHER,
    PREFERRED,
    SECRET_ACCESS_KEY,
    CallLog,
    Key,
    build,
    create_key,
    encrypt_once,
    raw_client,
    silent_endpoint,
)

from asherah import KeyManagementService, KmsError
from asherah.hazmat import aead
from asherah.testing import KmsContract, KmsFailureContract
from asherah_kms_aws import (
    AwsKeyManagementService,
    AwsKmsError,
    KmsEnvelope,
    RegionalKek,
    RegionalKey,
)
from testsupport.moto import MotoServer, closed_port


def down(region: str) -> dict[str, Any]:
    """Options that point ``region`` at a closed port and fail fast."""
    return {"endpoints": {region: closed_port()}, "max_attempts": 1, "connect_timeout": 1}


def logged_clients(moto: MotoServer, log: CallLog, endpoints: dict[str, str]) -> dict[str, Any]:
    return {r: log.attach(raw_client(e or moto.endpoint, "kms", r)) for r, e in endpoints.items()}


class CanonicalEnvelopeTamper:
    """Replaces the kit's tamper test for envelope drivers."""

    def test_tampered_blob_is_kms_error(self, kms: KeyManagementService) -> None:
        """Overrides the kit's byte flip in the middle of the blob: the canonical envelope is
        not authenticated as a whole. ``arn`` is informational and a spare region's copy is
        never read while the preferred one works, so flipping those changes nothing (see
        the next test). Every part that is used is authenticated."""
        assert isinstance(kms, AwsKeyManagementService)
        envelope = KmsEnvelope.from_json(kms.encrypt_key(os.urandom(32)))
        key = bytearray(envelope.encrypted_key)
        key[len(key) // 2] ^= 0x01
        with pytest.raises(KmsError):
            kms.decrypt_key(KmsEnvelope(bytes(key), envelope.keks).to_json())
        flipped = tuple(
            RegionalKek(k.region, k.arn, k.encrypted_kek[:-1] + bytes([k.encrypted_kek[-1] ^ 1]))
            for k in envelope.keks
        )
        with pytest.raises(KmsError):
            kms.decrypt_key(KmsEnvelope(envelope.encrypted_key, flipped).to_json())

    def test_informational_and_spare_parts_do_not_matter(
        self, kms: AwsKeyManagementService
    ) -> None:
        system_key = os.urandom(32)
        envelope = KmsEnvelope.from_json(kms.encrypt_key(system_key))
        changed = KmsEnvelope(
            envelope.encrypted_key,
            tuple(
                RegionalKek(k.region, "arn:changed", k.encrypted_kek)
                if k.region == kms.preferred_region
                else RegionalKek(k.region, k.arn, b"spoiled")
                for k in envelope.keks
            ),
        )
        assert bytes(kms.decrypt_key(changed.to_json())) == system_key


class TestMultiRegionContract(CanonicalEnvelopeTamper, KmsContract, KmsFailureContract):
    @pytest.fixture
    def broken_kms(
        self, moto: MotoServer, region_map: dict[str, str]
    ) -> Iterator[AwsKeyManagementService]:
        driver = build(
            moto,
            region_map,
            endpoints={region: closed_port() for region in region_map},
            max_attempts=1,
        )
        yield driver
        driver.close()


class TestSingleKeyContract(CanonicalEnvelopeTamper, KmsContract):
    @pytest.fixture
    def kms(self, moto: MotoServer) -> Iterator[AwsKeyManagementService]:
        driver = AwsKeyManagementService.build(key_id=ALIAS, region=OTHER, endpoint=moto.endpoint)
        yield driver
        driver.close()


def test_envelope_is_canonical_and_opens_with_plain_kms_calls(
    moto: MotoServer, kms: AwsKeyManagementService, keys: dict[str, Key]
) -> None:
    system_key = os.urandom(32)
    blob = kms.encrypt_key(system_key)
    document = json.loads(blob)
    assert list(document) == ["encryptedKey", "kmsKeks"]
    assert [list(kek) for kek in document["kmsKeks"]] == [["region", "arn", "encryptedKek"]] * 2
    envelope = KmsEnvelope.from_json(blob)
    assert envelope.to_json() == blob
    assert envelope.regions == (OTHER, PREFERRED)  # sorted by region name
    assert [kek.arn for kek in envelope.keks] == [keys[OTHER].arn, keys[PREFERRED].arn]
    # Every region's copy is the same data key, and that key opens the system key.
    data_keys = {
        kek.region: raw_client(moto.endpoint, "kms", kek.region).decrypt(
            CiphertextBlob=kek.encrypted_kek
        )["Plaintext"]
        for kek in envelope.keks
    }
    assert data_keys[OTHER] == data_keys[PREFERRED]
    assert len(data_keys[OTHER]) == 32
    assert aead.open_sealed(data_keys[OTHER], envelope.encrypted_key) == system_key


def test_aliases_work_and_the_generating_region_records_the_key_arn(
    moto: MotoServer, keys: dict[str, Key]
) -> None:
    by_alias = {PREFERRED: ALIAS, OTHER: keys[OTHER].alias_arn}
    kms = build(moto, by_alias)
    try:
        system_key = os.urandom(32)
        blob = kms.encrypt_key(system_key)
        arns = {kek.region: kek.arn for kek in KmsEnvelope.from_json(blob).keks}
        # GenerateDataKey answers with the key ARN; other regions record the configured id.
        assert arns == {PREFERRED: keys[PREFERRED].arn, OTHER: keys[OTHER].alias_arn}
        assert bytes(kms.decrypt_key(blob)) == system_key
    finally:
        kms.close()
    by_arn = build(moto, {r: k.arn for r, k in keys.items()}, preferred_region=OTHER)
    try:
        assert bytes(by_arn.decrypt_key(blob)) == system_key
    finally:
        by_arn.close()


def test_other_regions_are_wrapped_in_parallel_on_the_driver_threads(
    moto: MotoServer, keys: dict[str, Key]
) -> None:
    third = create_key(moto.endpoint, "eu-west-1")
    log = CallLog()
    clients = logged_clients(moto, log, {PREFERRED: "", OTHER: "", "eu-west-1": ""})
    arns = {PREFERRED: keys[PREFERRED].arn, OTHER: keys[OTHER].arn, "eu-west-1": third.arn}
    # Each Encrypt waits until the other one has started: sequential calls would time out.
    barrier = threading.Barrier(2, timeout=10)

    def meet(**_: Any) -> None:
        barrier.wait()

    for region in (OTHER, "eu-west-1"):
        clients[region].meta.events.register("before-call.kms.Encrypt", meet)
    kms = AwsKeyManagementService(
        [RegionalKey(r, arns[r], clients[r]) for r in arns], preferred_region=PREFERRED
    )
    try:
        system_key = os.urandom(32)
        blob = kms.encrypt_key(system_key)
        assert KmsEnvelope.from_json(blob).regions == ("eu-west-1", OTHER, PREFERRED)
        assert log.regions("GenerateDataKey") == [PREFERRED]
        assert sorted(log.regions("Encrypt")) == ["eu-west-1", OTHER]
        assert all(t.startswith("asherah-kms-aws") for t in log.threads("Encrypt"))
        assert bytes(kms.decrypt_key(blob)) == system_key
    finally:
        kms.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("asherah-kms-aws")]


def test_region_down_at_creation_is_left_out_and_the_other_region_decrypts(
    moto: MotoServer,
    region_map: dict[str, str],
    kms: AwsKeyManagementService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    system_key = os.urandom(32)
    blob = encrypt_once(build(moto, region_map, **down(OTHER)), system_key, caplog)
    assert KmsEnvelope.from_json(blob).regions == (PREFERRED,)
    warnings = [r for r in caplog.records if r.name == "asherah.kms.aws"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    text = warnings[0].getMessage()
    assert OTHER in text
    assert "Encrypt EndpointConnectionError" in text
    assert system_key.hex() not in text
    # Later, with every region up, the envelope still opens (from the region it has).
    assert bytes(kms.decrypt_key(blob)) == system_key
    # ...but not where it was left out.
    only_other = build(moto, {OTHER: region_map[OTHER]}, preferred_region=OTHER)
    try:
        with pytest.raises(AwsKmsError, match="no matching regions found"):
            only_other.decrypt_key(blob)
    finally:
        only_other.close()


def test_strict_regions_fails_instead_of_leaving_a_region_out(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    strict = build(moto, region_map, strict_regions=True, **down(OTHER))
    try:
        with pytest.raises(AwsKmsError) as info:
            strict.encrypt_key(os.urandom(32))
    finally:
        strict.close()
    assert "strict_regions" in str(info.value)
    assert [(f.region, f.operation, f.code) for f in info.value.failures] == [
        (OTHER, "Encrypt", "EndpointConnectionError")
    ]


def test_strict_regions_passes_when_every_region_answers(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    strict = build(moto, region_map, strict_regions=True)
    try:
        blob = strict.encrypt_key(os.urandom(32))
        assert KmsEnvelope.from_json(blob).regions == (OTHER, PREFERRED)
    finally:
        strict.close()


def test_preferred_region_down_at_creation_generates_in_the_next_region(
    moto: MotoServer,
    region_map: dict[str, str],
    kms: AwsKeyManagementService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    system_key = os.urandom(32)
    blob = encrypt_once(build(moto, region_map, **down(PREFERRED)), system_key, caplog)
    envelope = KmsEnvelope.from_json(blob)
    assert envelope.regions == (OTHER,)
    messages = [r.getMessage() for r in caplog.records if r.name == "asherah.kms.aws"]
    assert any("GenerateDataKey failed in ['us-west-2']" in m for m in messages)
    assert any("leaves out region(s) ['us-west-2']" in m for m in messages)
    assert bytes(kms.decrypt_key(blob)) == system_key


def test_every_region_down_at_creation_lists_each_reason(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    dead = build(moto, region_map, endpoints={r: closed_port() for r in region_map}, max_attempts=1)
    try:
        with pytest.raises(AwsKmsError, match="GenerateDataKey failed in every region") as info:
            dead.encrypt_key(os.urandom(32))
    finally:
        dead.close()
    assert [(f.region, f.code) for f in info.value.failures] == [
        (PREFERRED, "EndpointConnectionError"),
        (OTHER, "EndpointConnectionError"),
    ]


def test_preferred_region_down_at_decrypt_the_other_region_decrypts(
    moto: MotoServer, region_map: dict[str, str], kms: AwsKeyManagementService
) -> None:
    system_key = os.urandom(32)
    blob = kms.encrypt_key(system_key)
    log = CallLog()
    clients = logged_clients(moto, log, {PREFERRED: closed_port(), OTHER: ""})
    reader = AwsKeyManagementService(
        [RegionalKey(r, region_map[r], clients[r]) for r in region_map],
        preferred_region=PREFERRED,
    )
    try:
        assert bytes(reader.decrypt_key(blob)) == system_key
    finally:
        reader.close()
    assert log.regions("Decrypt")[0] == PREFERRED
    assert log.regions("Decrypt")[-1] == OTHER


def test_decrypt_tries_preferred_then_by_name_and_skips_absent_regions(
    moto: MotoServer, keys: dict[str, Key]
) -> None:
    third = create_key(moto.endpoint, "eu-west-1")
    arns = {PREFERRED: keys[PREFERRED].arn, OTHER: keys[OTHER].arn, "eu-west-1": third.arn}
    writer = build(moto, arns)
    system_key = os.urandom(32)
    envelope = KmsEnvelope.from_json(writer.encrypt_key(system_key))
    writer.close()
    # Spoil the preferred and eu-west-1 copies: KMS refuses them, us-east-1 must win.
    spoiled = KmsEnvelope(
        envelope.encrypted_key,
        tuple(
            kek if kek.region == OTHER else RegionalKek(kek.region, kek.arn, os.urandom(96))
            for kek in envelope.keks
        ),
    )
    log = CallLog()
    clients = logged_clients(moto, log, dict.fromkeys(arns, ""))
    reader = AwsKeyManagementService(
        [RegionalKey(r, arns[r], clients[r]) for r in arns], preferred_region=PREFERRED
    )
    try:
        assert bytes(reader.decrypt_key(spoiled.to_json())) == system_key
        assert log.regions("Decrypt") == [PREFERRED, "eu-west-1", OTHER]
        # An envelope without the preferred region: that region is skipped, not called.
        log.calls.clear()
        partial = KmsEnvelope(
            envelope.encrypted_key, tuple(k for k in envelope.keks if k.region == OTHER)
        )
        assert bytes(reader.decrypt_key(partial.to_json())) == system_key
        assert log.regions("Decrypt") == [OTHER]
    finally:
        reader.close()


def test_all_regions_failing_gives_one_error_with_each_reason(
    moto: MotoServer, region_map: dict[str, str], kms: AwsKeyManagementService
) -> None:
    system_key = os.urandom(32)
    envelope = KmsEnvelope.from_json(kms.encrypt_key(system_key))
    # Keys of other accounts' making: each region's Decrypt refuses the ciphertext.
    strangers = {r: create_key(moto.endpoint, r).arn for r in region_map}
    wrong = build(moto, strangers)
    try:
        with pytest.raises(AwsKmsError) as info:
            wrong.decrypt_key(envelope.to_json())
    finally:
        wrong.close()
    message = str(info.value)
    assert message.startswith("AWS KMS decrypt_key: all KMS backends failed to decrypt (")
    assert [(f.region, f.operation, f.code) for f in info.value.failures] == [
        (PREFERRED, "Decrypt", "AccessDeniedException"),
        (OTHER, "Decrypt", "AccessDeniedException"),
    ]
    assert f"{PREFERRED}: Decrypt AccessDeniedException" in message
    assert f"{OTHER}: Decrypt AccessDeniedException" in message
    assert system_key.hex() not in message


def test_a_data_key_that_does_not_open_the_system_key_is_reported(
    kms: AwsKeyManagementService,
) -> None:
    one = KmsEnvelope.from_json(kms.encrypt_key(os.urandom(32)))
    other = KmsEnvelope.from_json(kms.encrypt_key(os.urandom(32)))
    mixed = KmsEnvelope(one.encrypted_key, other.keks)
    with pytest.raises(AwsKmsError) as info:
        kms.decrypt_key(mixed.to_json())
    assert {f.code for f in info.value.failures} == {"KeyMismatch"}
    assert len(info.value.failures) == 2


def test_unknown_alias_is_not_found_in_each_region(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    missing = build(moto, dict.fromkeys(region_map, "alias/does-not-exist"))
    try:
        with pytest.raises(AwsKmsError) as info:
            missing.encrypt_key(os.urandom(32))
    finally:
        missing.close()
    assert {(f.region, f.code) for f in info.value.failures} == {
        (PREFERRED, "NotFoundException"),
        (OTHER, "NotFoundException"),
    }
    assert "alias/does-not-exist" in str(info.value)


def test_a_hung_region_times_out_with_the_timeout_named(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    with silent_endpoint() as hung:
        slow = build(
            moto,
            region_map,
            endpoints={OTHER: hung},
            read_timeout=0.5,
            max_attempts=1,
        )
        try:
            started = time.monotonic()
            blob = slow.encrypt_key(os.urandom(32))
            assert time.monotonic() - started < 10
        finally:
            slow.close()
    assert KmsEnvelope.from_json(blob).regions == (PREFERRED,)
    with silent_endpoint() as hung:
        single = AwsKeyManagementService.build(
            key_id=ALIAS, region=OTHER, endpoint=hung, read_timeout=0.5, max_attempts=1
        )
        try:
            with pytest.raises(AwsKmsError) as info:
                single.encrypt_key(os.urandom(32))
        finally:
            single.close()
    assert [(f.region, f.code) for f in info.value.failures] == [(OTHER, "ReadTimeoutError")]


@pytest.mark.parametrize(
    "blob",
    [b"not json", b"{}", b'{"encryptedKey":"AAAA","kmsKeks":[]}', os.urandom(60)],
    ids=["text", "empty-object", "short-key", "random"],
)
def test_malformed_envelopes_are_kms_errors_without_a_kms_call(
    moto: MotoServer, region_map: dict[str, str], blob: bytes
) -> None:
    log = CallLog()
    clients = logged_clients(moto, log, dict.fromkeys(region_map, ""))
    kms = AwsKeyManagementService(
        [RegionalKey(r, region_map[r], clients[r]) for r in region_map],
        preferred_region=PREFERRED,
    )
    try:
        with pytest.raises(KmsError, match="invalid KMS envelope"):
            kms.decrypt_key(blob)
    finally:
        kms.close()
    assert log.calls == []


def test_endpoint_from_aws_endpoint_url(
    moto: MotoServer, region_map: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    kms = AwsKeyManagementService.build(region_map=region_map, preferred_region=OTHER)
    try:
        system_key = os.urandom(32)
        assert bytes(kms.decrypt_key(kms.encrypt_key(system_key))) == system_key
    finally:
        kms.close()


def test_async_round_trip(kms: AwsKeyManagementService) -> None:
    async def go() -> bytes:
        blob = await kms.encrypt_key_async(b"\x07" * 32)
        return bytes(await kms.decrypt_key_async(blob))

    assert asyncio.run(go()) == b"\x07" * 32


def test_closed_driver_refuses_work_and_close_is_idempotent(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    kms = build(moto, region_map)
    blob = kms.encrypt_key(os.urandom(32))
    kms.close()
    kms.close()
    with pytest.raises(KmsError, match="closed"):
        kms.encrypt_key(os.urandom(32))
    with pytest.raises(KmsError, match="closed"):
        kms.decrypt_key(blob)


def test_errors_and_reprs_carry_no_credentials_or_keys(
    moto: MotoServer, region_map: dict[str, str]
) -> None:
    system_key = os.urandom(32)
    kms = build(moto, region_map, **down(OTHER))
    try:
        blob = kms.encrypt_key(system_key)
        wrong = KmsEnvelope.from_json(blob)
        spoiled = KmsEnvelope(wrong.encrypted_key, (RegionalKek(PREFERRED, "x", b"\x00" * 40),))
        with pytest.raises(AwsKmsError) as info:
            kms.decrypt_key(spoiled.to_json())
        text = str(info.value) + repr(info.value.failures) + repr(kms)
    finally:
        kms.close()
    for secret in (
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        system_key.hex(),
        base64.b64encode(system_key).decode(),
    ):
        assert secret not in text
