"""The fixed vectors of the spec: AES-GCM sealed layout, the §1.6 record set built from its
ingredients, the Go data-row fixture, JSON shapes and strict base64."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asherah import (
    DataRowRecord,
    EnvelopeKeyRecord,
    InMemoryMetastore,
    KeyMeta,
    SessionFactory,
    StaticKeyManagementService,
    _b64,
    _keys,
    _random_pool,
)
from asherah._drift_guard import encode_snapshot, guard_id, snapshot
from asherah._key_ids import key_ids
from asherah._limits import MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES
from asherah._records import RecordFormatError, json_string
from asherah.hazmat import aead

from .conftest import static_config

# -- AES-256-GCM, sealed layout ct || tag || nonce ------------------------------------------

NIST_KATS = [
    pytest.param(
        "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
        "",
        "bdc1ac884d332457a1d2664f168c76f0",
        "516c33929df5a3284ff463d7",
        "",
        id="empty-plaintext",
    ),
    pytest.param(
        "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
        "fa4362189661d163fcd6a56d8bf0405a",
        "d636ac1bbedd5cc3ee727dc2ab4a9489",
        "0d18e06c7c725ac9e362e1ce",
        "2db5168e932556f8089a0622981d017d",
        id="16-byte-plaintext",
    ),
]


def fixed_random(
    monkeypatch: pytest.MonkeyPatch, *, keys: list[bytes], nonces: list[bytes]
) -> None:
    """Make key generation and nonces deterministic, in the order the engine asks for them."""
    key_iter: Iterator[bytes] = iter(keys)
    nonce_iter: Iterator[bytes] = iter(nonces)

    def urandom(size: int) -> bytes:
        source = key_iter if size == aead.KEY_SIZE else nonce_iter
        value = next(source)
        assert len(value) == size
        return value

    fake_os = SimpleNamespace(urandom=urandom)
    monkeypatch.setattr(aead, "os", fake_os)
    monkeypatch.setattr(_keys, "new_key_material", lambda: bytearray(urandom(aead.KEY_SIZE)))

    def draw() -> _random_pool.Draw:
        # The encrypt path takes its data-row key and both nonces in one draw.
        return bytearray(urandom(aead.KEY_SIZE)), urandom(aead.NONCE_SIZE), urandom(aead.NONCE_SIZE)

    monkeypatch.setattr(_random_pool, "draw", draw)
    monkeypatch.setattr(_random_pool, "take", draw)
    monkeypatch.setattr(
        _random_pool,
        "key_and_nonce",
        lambda: (bytearray(urandom(aead.KEY_SIZE)), urandom(aead.NONCE_SIZE)),
    )


@pytest.mark.parametrize(("key", "ct", "tag", "nonce", "pt"), NIST_KATS)
def test_nist_kat_opens_in_sealed_layout(key: str, ct: str, tag: str, nonce: str, pt: str) -> None:
    sealed = bytes.fromhex(ct + tag + nonce)
    assert aead.open_sealed(bytes.fromhex(key), sealed) == bytes.fromhex(pt)


@pytest.mark.parametrize(("key", "ct", "tag", "nonce", "pt"), NIST_KATS)
def test_nist_kat_seals_to_exact_bytes_with_nonce_last(
    monkeypatch: pytest.MonkeyPatch, key: str, ct: str, tag: str, nonce: str, pt: str
) -> None:
    fixed_random(monkeypatch, keys=[], nonces=[bytes.fromhex(nonce)])
    assert aead.seal(bytes.fromhex(key), bytes.fromhex(pt)).hex() == ct + tag + nonce


@pytest.mark.parametrize(("key", "ct", "tag", "nonce", "pt"), NIST_KATS)
def test_nist_kat_any_flipped_bit_fails(key: str, ct: str, tag: str, nonce: str, pt: str) -> None:
    sealed = bytes.fromhex(ct + tag + nonce)
    for index in range(len(sealed)):  # ciphertext, tag and nonce bytes alike
        tampered = bytearray(sealed)
        tampered[index] ^= 0x80
        with pytest.raises(aead.AeadError):
            aead.open_sealed(bytes.fromhex(key), bytes(tampered))
    with pytest.raises(aead.AeadError):
        aead.open_sealed(bytes.fromhex(key), sealed + b"\x00")


def test_sealed_sizes_and_short_input() -> None:
    key = bytes(range(32))
    assert len(aead.seal(key, b"")) == 28
    assert len(aead.seal(key, bytes(32))) == 60
    assert aead.seal(key, b"x") != aead.seal(key, b"x")  # fresh nonce each time
    with pytest.raises(aead.AeadError, match="too short"):
        aead.open_sealed(key, bytes(27))
    with pytest.raises(aead.AeadError, match="key size"):
        aead.seal(bytes(16), b"x")
    with pytest.raises(aead.AeadError, match="key size"):
        aead.open_sealed(bytes(31), bytes(28))


# -- §1.6: the full record set from its ingredients ------------------------------------------

V16_MASTER = "746869734973415374617469634d61737465724b6579466f7254657374696e67"
V16_SK_ROW = (
    '{"Created":1699999980,"Key":"NW62NaQPTaber6YSmAVS4jpI4jRAwe9XOius2b4XTqChRq2kzwjd+p7yEQh9SRJI'
    'AQEBAQEBAQEBAQEB"}'
)
V16_IK_ROW = (
    '{"Created":1699999980,"Key":"YBIsDMRjFXiN6W096apl2zoxHDHIN76Ank+TKB0fJd9n4Yudx7dYMTd7692qwjDB'
    'AgICAgICAgICAgIC","ParentKeyMeta":{"KeyId":"_SK_svc_prod","Created":1699999980}}'
)
V16_DRR = (
    '{"Key":{"Created":1700000000,"Key":"aNKH4ZAqnJxtfa8pZ5iEqwsFkdbVgQv351jn9B6k4/LmMZVg0jVlNByFSx4r'
    '9lRFAwMDAwMDAwMDAwMD","ParentKeyMeta":{"KeyId":"_IK_p1_svc_prod","Created":1699999980}},'
    '"Data":"/FbqklrVI8c9dSBir+n7W4aik4CP2yFsZq86+0nEhtRGFRs26gQEBAQEBAQEBAQEBA=="}'
)
V16_PLAINTEXT = b"hello asherah interop"


def v16_config() -> dict[str, Any]:
    return static_config(StaticMasterKeyHex=V16_MASTER)


def test_v16_listed_rows_decrypt_to_listed_keys() -> None:
    master = bytes.fromhex(V16_MASTER)
    sk_row = EnvelopeKeyRecord.from_json(V16_SK_ROW)
    ik_row = EnvelopeKeyRecord.from_json(V16_IK_ROW)
    drr = DataRowRecord.from_json(V16_DRR)
    assert sk_row.parent_key_meta is None
    assert ik_row.parent_key_meta == KeyMeta("_SK_svc_prod", 1699999980)
    sk = aead.open_sealed(master, sk_row.encrypted_key)
    ik = aead.open_sealed(sk, ik_row.encrypted_key)
    assert drr.key is not None
    drk = aead.open_sealed(ik, drr.key.encrypted_key)
    assert (sk, ik, drk) == (b"\x11" * 32, b"\x22" * 32, b"\x33" * 32)
    assert aead.open_sealed(drk, drr.data) == V16_PLAINTEXT
    # The nonce is the last 12 bytes of each sealed blob.
    assert sk_row.encrypted_key[-12:] == b"\x01" * 12
    assert ik_row.encrypted_key[-12:] == b"\x02" * 12
    assert drr.key.encrypted_key[-12:] == b"\x03" * 12
    assert drr.data[-12:] == b"\x04" * 12


def test_v16_listed_rows_decrypt_through_a_session() -> None:
    metastore = InMemoryMetastore()
    metastore.store("_SK_svc_prod", 1699999980, EnvelopeKeyRecord.from_json(V16_SK_ROW))
    metastore.store("_IK_p1_svc_prod", 1699999980, EnvelopeKeyRecord.from_json(V16_IK_ROW))
    with SessionFactory(v16_config(), metastore=metastore) as factory:
        assert factory.get_session("p1").decrypt_bytes(V16_DRR) == V16_PLAINTEXT


def test_v16_built_from_ingredients_is_byte_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine asks for: SK, its KMS nonce, IK, its nonce, DRK, the DRK nonce, the data nonce.
    fixed_random(
        monkeypatch,
        keys=[b"\x11" * 32, b"\x22" * 32, b"\x33" * 32],
        nonces=[b"\x01" * 12, b"\x02" * 12, b"\x03" * 12, b"\x04" * 12],
    )
    metastore = InMemoryMetastore()
    with SessionFactory(v16_config(), metastore=metastore, clock=lambda: 1_700_000_000.0) as f:
        record = f.get_session("p1").encrypt_bytes(V16_PLAINTEXT)
    assert record == V16_DRR
    rows = {key_id: stored.to_json() for key_id, _, stored in metastore.rows()}
    assert rows["_SK_svc_prod"] == V16_SK_ROW
    assert rows["_IK_p1_svc_prod"] == V16_IK_ROW
    assert {c for k, c, _ in metastore.rows() if not k.startswith("__")} == {1699999980}


def test_static_kms_wraps_the_v16_system_key(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed_random(monkeypatch, keys=[], nonces=[b"\x01" * 12])
    kms = StaticKeyManagementService(bytes.fromhex(V16_MASTER))
    wrapped = kms.encrypt_key(b"\x11" * 32)
    assert EnvelopeKeyRecord(1699999980, wrapped).to_json() == V16_SK_ROW
    assert kms.decrypt_key(wrapped) == bytearray(b"\x11" * 32)


# -- the Go data row fixture ------------------------------------------------------------------

GO_DRR = (
    '{"Key":{"Created":1709913600,"Key":"AQIDBA==","ParentKeyMeta":'
    '{"KeyId":"_IK_user1_svc_prod","Created":1709913540}},"Data":"dGVzdA=="}'
)


def test_go_data_row_fixture_parses_and_reserializes_byte_exact() -> None:
    row = DataRowRecord.from_json(GO_DRR)
    assert row.data == b"test"
    assert row.key == EnvelopeKeyRecord(
        1709913600, bytes([1, 2, 3, 4]), KeyMeta("_IK_user1_svc_prod", 1709913540)
    )
    assert row.to_json() == GO_DRR
    assert DataRowRecord.from_json(GO_DRR.encode()).data == b"test"


# -- JSON shapes ----------------------------------------------------------------------------

SIXTY = bytes(range(60))
SIXTY_B64 = base64.b64encode(SIXTY).decode()


def test_envelope_key_record_field_order_and_omission() -> None:
    meta = KeyMeta("_SK_svc_prod", 1699999980)
    assert EnvelopeKeyRecord(1, SIXTY).to_json() == f'{{"Created":1,"Key":"{SIXTY_B64}"}}'
    assert EnvelopeKeyRecord(1, SIXTY, meta).to_json() == (
        f'{{"Created":1,"Key":"{SIXTY_B64}",'
        '"ParentKeyMeta":{"KeyId":"_SK_svc_prod","Created":1699999980}}'
    )
    assert (
        EnvelopeKeyRecord(1, SIXTY, meta, True).to_json().startswith('{"Revoked":true,"Created":1,')
    )
    assert EnvelopeKeyRecord(1, SIXTY, None, False).to_json() == (
        f'{{"Revoked":false,"Created":1,"Key":"{SIXTY_B64}"}}'
    )
    assert EnvelopeKeyRecord(-5, b"").to_json() == '{"Created":-5,"Key":""}'


def test_data_row_record_shape() -> None:
    key = EnvelopeKeyRecord(7, SIXTY, KeyMeta("_IK_p_svc_prod", 6))
    assert DataRowRecord(key, b"\x00").to_json() == (
        f'{{"Key":{{"Created":7,"Key":"{SIXTY_B64}",'
        '"ParentKeyMeta":{"KeyId":"_IK_p_svc_prod","Created":6}},"Data":"AA=="}'
    )
    assert DataRowRecord(None, b"").to_json() == '{"Key":null,"Data":""}'


@pytest.mark.parametrize(
    ("key_id", "escaped"),
    [
        ('a"b', r'"a\"b"'),
        ("a\\b", r'"a\\b"'),
        ("a\nb\rc\td", r'"a\nb\rc\td"'),
        ("\x01\x1f", r'"\u0001\u001f"'),
        ("ünï/€", '"ünï/€"'),  # raw UTF-8, "/" not escaped
        ("\x7f", '"\x7f"'),
    ],
)
def test_key_id_escaping_matches_serde_json(key_id: str, escaped: str) -> None:
    assert json_string(key_id) == escaped
    meta_json = KeyMeta(key_id, 1).to_json()
    assert meta_json == f'{{"KeyId":{escaped},"Created":1}}'
    assert json.loads(meta_json)["KeyId"] == key_id


def test_session_record_matches_its_parsed_form(make_factory) -> None:
    record = make_factory().get_session('we"ird\\part\n').encrypt_bytes(b"x")
    parsed = DataRowRecord.from_json(record)
    assert parsed.to_json() == record
    assert list(json.loads(record)) == ["Key", "Data"]
    assert list(json.loads(record)["Key"]) == ["Created", "Key", "ParentKeyMeta"]
    assert " " not in record


def test_parsing_ignores_unknown_fields_and_accepts_null_key() -> None:
    text = (
        '{"Extra":[1,{"x":null}],"Key":{"Created":5,"Key":"AQID","Unknown":true,'
        '"ParentKeyMeta":{"KeyId":"k","Created":4,"More":1}},"Data":"AQ=="}'
    )
    row = DataRowRecord.from_json(text)
    assert row.key == EnvelopeKeyRecord(5, b"\x01\x02\x03", KeyMeta("k", 4))
    assert DataRowRecord.from_json('{"Data":""}') == DataRowRecord(None, b"")
    assert DataRowRecord.from_json('{"Key":null,"Data":"AA=="}').key is None
    assert EnvelopeKeyRecord.from_json('{"Created":1,"Key":"","Revoked":null}').revoked is None
    assert EnvelopeKeyRecord.from_json('{"Revoked":true,"Created":1,"Key":""}').revoked is True
    # Whitespace and key order as JSON/JSONB columns return them.
    spaced = (
        '{ "Key" : "AQID" , "ParentKeyMeta" : { "Created" : 2 , "KeyId" : "x" }, "Created" : 3 }'
    )
    assert EnvelopeKeyRecord.from_json(spaced) == EnvelopeKeyRecord(
        3, b"\x01\x02\x03", KeyMeta("x", 2)
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"Key":null}',  # Data is required
        '{"Data":null}',
        '{"Data":5}',
        '{"Key":{"Key":"AQID"},"Data":""}',  # EKR needs Created
        '{"Key":{"Created":1},"Data":""}',  # and Key
        '{"Key":{"Created":1,"Key":null},"Data":""}',
        '{"Key":{"Created":"1","Key":""},"Data":""}',
        '{"Key":{"Created":1.0,"Key":""},"Data":""}',
        '{"Key":{"Created":true,"Key":""},"Data":""}',
        '{"Key":{"Created":9223372036854775808,"Key":""},"Data":""}',
        '{"Key":{"Created":1,"Key":"","Revoked":"yes"},"Data":""}',
        '{"Key":{"Created":1,"Key":"","ParentKeyMeta":{"Created":1}},"Data":""}',
        '{"Key":{"Created":1,"Key":"","ParentKeyMeta":{"KeyId":"k"}},"Data":""}',
        '{"Key":{"Created":1,"Key":"","ParentKeyMeta":{"KeyId":1,"Created":1}},"Data":""}',
        '{"Key":{"Created":1,"Key":"","ParentKeyMeta":"k"},"Data":""}',
        '{"Key":"AQID","Data":""}',
        "[]",
        "null",
        "",
        "not json",
    ],
)
def test_malformed_records_are_format_errors(text: str) -> None:
    with pytest.raises(RecordFormatError):
        DataRowRecord.from_json(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Key":null}', "DataRowRecord is missing field Data"),
        ('{"Data":5}', "Data must be a base64 string"),
        ('{"Key":{"Key":""},"Data":""}', "Key is missing field Created"),
        ('{"Key":{"Created":1},"Data":""}', "Key is missing field Key"),
        ('{"Key":{"Created":1.0,"Key":""},"Data":""}', "Key.Created must be a 64-bit integer"),
        ('{"Key":{"Created":1,"Key":5},"Data":""}', "Key.Key must be a base64 string"),
        ('{"Key":{"Created":1,"Key":"AQ="},"Data":""}', "Key.Key is not valid standard base64"),
        ('{"Key":{"Created":1,"Key":"","Revoked":1},"Data":""}', "Key.Revoked must be a boolean"),
        (
            '{"Key":{"Created":1,"Key":"","ParentKeyMeta":[]},"Data":""}',
            "Key.ParentKeyMeta must be a JSON object",
        ),
        (
            '{"Key":{"Created":1,"Key":"","ParentKeyMeta":{"Created":1}},"Data":""}',
            "Key.ParentKeyMeta.KeyId must be a string",
        ),
        (
            '{"Key":{"Created":1,"Key":"","ParentKeyMeta":{"KeyId":"k"}},"Data":""}',
            "Key.ParentKeyMeta is missing field Created",
        ),
        (
            '{"Key":{"Created":1,"Key":"","ParentKeyMeta":{"KeyId":"k","Created":-9e99}},'
            '"Data":""}',
            "Key.ParentKeyMeta.Created must be a 64-bit integer",
        ),
    ],
)
def test_format_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(RecordFormatError) as caught:
        DataRowRecord.from_json(text)
    assert str(caught.value).startswith(message)


def test_i64_bounds_are_accepted() -> None:
    for created in (-(2**63), 2**63 - 1, 0):
        assert EnvelopeKeyRecord.from_json(f'{{"Created":{created},"Key":""}}').created == created


# -- strict base64 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("AQ==", b"\x01"),
        ("AQI=", b"\x01\x02"),
        ("AQID", b"\x01\x02\x03"),
        ("+/8=", b"\xfb\xff"),
    ],
)
def test_base64_accepts_canonical_padded_standard(text: str, expected: bytes) -> None:
    assert _b64.decode(text) == expected
    assert _b64.encode(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "AQ",  # missing padding
        "AQI",
        "AR==",  # non-zero trailing bits
        "AQJ=",
        "AQ==\n",
        "AQ\n==",
        " AQ==",
        "AQ= =",
        "-_8=",  # URL-safe alphabet
        "AQ=A",
        "====",
        "A===",
        "AQ===",
        "AQ==AQ==",  # padding in the middle
        "ÄQ==",
        "AQ==\x00",
    ],
)
def test_base64_rejects_what_the_reference_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="base64"):
        _b64.decode(text)


def _stdlib_strict(text: str) -> bytes | None:
    """Strict = the standard decoder with validation, and the canonical re-encoding is the input."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return data if base64.b64encode(data).decode() == text else None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="AQRgw+/=-_ \nz9", max_size=12))
def test_base64_strictness_agrees_with_a_canonical_reencoding_oracle(text: str) -> None:
    expected = _stdlib_strict(text)
    if expected is None:
        with pytest.raises(ValueError, match="base64"):
            _b64.decode(text)
    else:
        assert _b64.decode(text) == expected


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_base64_round_trip(data: bytes) -> None:
    assert _b64.decode(_b64.encode(data)) == data
    assert _b64.encode(data) == base64.b64encode(data).decode()


def test_every_trailing_character_combination_of_one_byte() -> None:
    for first, second in itertools.product(_b64._ALPHABET, repeat=2):
        text = f"{first}{second}=="
        assert (_stdlib_strict(text) is None) == _raises(text), text


def _raises(text: str) -> bool:
    try:
        _b64.decode(text)
    except ValueError:
        return True
    return False


# -- key ids, the drift guard row and limits -------------------------------------------------


def test_key_ids() -> None:
    ids = key_ids("p1", "svc", "prod", None)
    assert (ids.system_key_id, ids.intermediate_key_id) == ("_SK_svc_prod", "_IK_p1_svc_prod")
    suffixed = key_ids("p1", "svc", "prod", "us-west-2")
    assert suffixed.system_key_id == "_SK_svc_prod_us-west-2"
    assert suffixed.intermediate_key_id == "_IK_p1_svc_prod_us-west-2"
    assert suffixed.intermediate_core_id == "_IK_p1_svc_prod"


def test_drift_guard_id_and_memory_payload_match_the_reference() -> None:
    assert guard_id("svc", "prod") == (
        "__asherah_internal_config_drift_guard_v1__:P4Box1cXU9ICNy3lMjV2RM_mKi3TyS-zYHPowt-w2-Y"
    )
    payload = encode_snapshot(snapshot("svc", "prod", None, {"kind": "memory"}, {"kind": "static"}))
    assert payload == (
        b'{"schema_version":1,"service_name":"svc","product_id":"prod",'
        b'"region_suffix_enabled":false,"effective_region_suffix":null,"key_id_format_version":1,'
        b'"aead_algorithm":"AES-256-GCM","data_row_record_format":"asherah-json-v1",'
        b'"metastore_identity":{"kind":"memory"},"kms_identity":{"kind":"static"}}'
    )


def test_factory_writes_the_guard_row_once(make_factory, counting, memory) -> None:
    make_factory()
    make_factory()
    guard_rows = [(k, c, r) for k, c, r in memory.rows() if k.startswith("__asherah_internal")]
    assert len(guard_rows) == 1
    key_id, created, record = guard_rows[0]
    assert (key_id, created) == (guard_id("svc", "prod"), 946684800)
    assert record.parent_key_meta is None
    assert json.loads(record.encrypted_key)["metastore_identity"] == {"kind": "memory"}
    assert counting.calls["store"] == 1


def test_limits_are_the_reference_limits() -> None:
    assert MAX_PAYLOAD_BYTES == 67_108_864
    assert MAX_ENVELOPE_BYTES == 68_157_440
