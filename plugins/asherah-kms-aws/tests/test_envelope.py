"""The canonical KMS envelope format: the Go fixture, the reference's exact bytes, strictness."""

from __future__ import annotations

import json

import pytest

from asherah_kms_aws import EnvelopeFormatError, KmsEnvelope, RegionalKek

#: The Go-produced envelope from the reference's tests (spec §7.4).
GO_ENVELOPE = (
    '{"encryptedKey":"AQIDBAU=","kmsKeks":[{"region":"us-west-2",'
    '"arn":"arn:aws:kms:us-west-2:111122223333:key/example","encryptedKek":"CQgHBgU="}]}'
)


def test_go_fixture_parses_to_its_bytes() -> None:
    envelope = KmsEnvelope.from_json(GO_ENVELOPE.encode())
    assert envelope.encrypted_key == bytes([1, 2, 3, 4, 5])
    assert envelope.keks == (
        RegionalKek(
            region="us-west-2",
            arn="arn:aws:kms:us-west-2:111122223333:key/example",
            encrypted_kek=bytes([9, 8, 7, 6, 5]),
        ),
    )


def test_go_fixture_pretty_printed_parses_the_same() -> None:
    pretty = json.dumps(json.loads(GO_ENVELOPE), indent=4)
    assert KmsEnvelope.from_json(pretty) == KmsEnvelope.from_json(GO_ENVELOPE)


def test_writes_the_reference_bytes() -> None:
    # Compact, encryptedKey first, then kmsKeks entries as region, arn, encryptedKek.
    assert KmsEnvelope.from_json(GO_ENVELOPE).to_json() == GO_ENVELOPE.encode()
    two = KmsEnvelope(
        b"\xff" * 3,
        (
            RegionalKek("us-east-1", "arn:e", b"\x00"),
            RegionalKek("us-west-2", "arn:w", b"\xfb\xff"),
        ),
    )
    assert two.to_json() == (
        b'{"encryptedKey":"////","kmsKeks":[{"region":"us-east-1","arn":"arn:e",'
        b'"encryptedKek":"AA=="},{"region":"us-west-2","arn":"arn:w","encryptedKek":"+/8="}]}'
    )


def test_non_ascii_and_escapes_are_written_as_serde_json_writes_them() -> None:
    envelope = KmsEnvelope(b"", (RegionalKek('rü"\\\n\x01', "a", b""),))
    assert (
        envelope.to_json()
        == (
            '{"encryptedKey":"","kmsKeks":[{"region":"rü\\"\\\\\\n\\u0001","arn":"a",'
            '"encryptedKek":""}]}'
        ).encode()
    )
    assert KmsEnvelope.from_json(envelope.to_json()) == envelope


def test_unknown_fields_are_ignored_and_order_does_not_matter() -> None:
    text = (
        '{"kmsKeks":[{"encryptedKek":"CQgHBgU=","extra":1,"arn":"x","region":"r"}],'
        '"future":{"a":[1]},"encryptedKey":"AQIDBAU="}'
    )
    envelope = KmsEnvelope.from_json(text)
    assert envelope.encrypted_key == bytes([1, 2, 3, 4, 5])
    assert envelope.keks == (RegionalKek("r", "x", bytes([9, 8, 7, 6, 5])),)


def test_a_repeated_region_resolves_to_its_last_entry() -> None:
    envelope = KmsEnvelope(
        b"k", (RegionalKek("r", "first", b"1"), RegionalKek("r", "second", b"2"))
    )
    found = envelope.kek_for("r")
    assert found is not None
    assert found.arn == "second"
    assert envelope.kek_for("elsewhere") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '"string"',
        "{}",
        '{"encryptedKey":"AQIDBAU="}',
        '{"kmsKeks":[]}',
        '{"encryptedKey":null,"kmsKeks":[]}',
        '{"encryptedKey":"AQIDBAU=","kmsKeks":{}}',
        '{"encryptedKey":"AQIDBAU=","kmsKeks":[1]}',
        '{"encryptedKey":"AQIDBAU=","kmsKeks":[{"region":"r","arn":"a"}]}',
        '{"encryptedKey":"AQIDBAU=","kmsKeks":[{"region":1,"arn":"a","encryptedKek":""}]}',
        '{"encryptedKey":"AQIDBAU=","kmsKeks":[{"arn":"a","encryptedKek":""}]}',
        '{"encryptedKey":"AQIDBAU","kmsKeks":[]}',  # padding missing
        '{"encryptedKey":"AR==","kmsKeks":[]}',  # non-zero trailing bits
        '{"encryptedKey":"-_-_","kmsKeks":[]}',  # URL-safe alphabet
        '{"encryptedKey":"AQID\\nBAU=","kmsKeks":[]}',  # whitespace inside
        '{"encryptedKey":"AQIDBAU=","kmsKeks":[{"region":"r","arn":"a","encryptedKek":"!"}]}',
    ],
)
def test_malformed_envelopes_are_refused(text: str) -> None:
    with pytest.raises(EnvelopeFormatError):
        KmsEnvelope.from_json(text)


def test_non_utf8_bytes_are_refused() -> None:
    with pytest.raises(EnvelopeFormatError):
        KmsEnvelope.from_json(b"\xff\xfe{}")


def test_reprs_show_regions_not_bytes() -> None:
    envelope = KmsEnvelope.from_json(GO_ENVELOPE)
    assert repr(envelope) == "KmsEnvelope(regions=['us-west-2'], <5 bytes>)"
    assert "CQgHBgU" not in repr(envelope.keks[0])
    assert "<5 bytes>" in repr(envelope.keks[0])
