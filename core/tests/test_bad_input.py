"""Malformed, tampered and foreign records: each is one ``DecryptionError`` and nothing is ever
written to the metastore or asked of the KMS. A fuzz test then mutates valid records at random
and checks that only ``AsherahError`` subclasses escape."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asherah import AsherahError, DecryptionError, InMemoryMetastore, SessionFactory
from asherah._key_ids import key_ids
from asherah.kms import StaticKeyManagementService
from asherah.testing import CountingKms, CountingMetastore

from .conftest import KEY_HEX
from .conftest import static_config as config

PLAINTEXT = b"abc"  # 31 sealed bytes: Data ends in "==", so trailing bits can be tested


class World:
    """One factory with a counting metastore and KMS, and valid records to mutate."""

    def __init__(self) -> None:
        self.memory = InMemoryMetastore()
        self.metastore = CountingMetastore(self.memory)
        self.kms = CountingKms(StaticKeyManagementService(bytes.fromhex(KEY_HEX)))
        self.factory = SessionFactory(config(), metastore=self.metastore, kms=self.kms)
        self.session = self.factory.get_session("a")
        self.record = self.session.encrypt_bytes(PLAINTEXT)
        self.second = self.session.encrypt_bytes(b"another one")
        self.other = self.factory.get_session("b").encrypt_bytes(PLAINTEXT)
        # Partition "a_svc_prod_zz" has the IK id "_IK_a_svc_prod_zz_svc_prod", which starts
        # with "_IK_a_svc_prod_": the reference's prefix gate let partition "a" read it.
        self.prefixed = self.factory.get_session("a_svc_prod_zz").encrypt_bytes(PLAINTEXT)
        self.session.decrypt_bytes(self.record)  # warm: later loads come from tampering only
        self.baseline = self.counts()

    def counts(self) -> tuple[int, int]:
        return self.metastore.writes, self.kms.calls["encrypt_key"]

    def assert_nothing_written(self) -> None:
        assert self.counts() == self.baseline

    def close(self) -> None:
        self.factory.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


# -- building mutations --------------------------------------------------------------------

Mutation = Callable[[World], "str | bytes"]


def edit(change: Callable[[dict[str, Any]], None]) -> Mutation:
    def mutate(w: World) -> str:
        obj = json.loads(w.record)
        change(obj)
        return json.dumps(obj, separators=(",", ":"))

    return mutate


def set_path(path: str, value: Any) -> Mutation:
    *parents, last = path.split(".")

    def change(obj: dict[str, Any]) -> None:
        for part in parents:
            obj = obj[part]
        obj[last] = value

    return edit(change)


def drop(path: str) -> Mutation:
    *parents, last = path.split(".")

    def change(obj: dict[str, Any]) -> None:
        for part in parents:
            obj = obj[part]
        del obj[last]

    return edit(change)


def b64_edit(path: str, change: Callable[[str], str]) -> Mutation:
    *parents, last = path.split(".")

    def apply(obj: dict[str, Any]) -> None:
        for part in parents:
            obj = obj[part]
        obj[last] = change(obj[last])

    return edit(apply)


def flip(path: str, where: str) -> Mutation:
    """Flip one bit in the ciphertext, the tag or the nonce of a sealed field."""

    def change(text: str) -> str:
        sealed = bytearray(base64.b64decode(text))
        index = {"ciphertext": 0, "tag": len(sealed) - 28, "nonce": len(sealed) - 1}[where]
        sealed[index] ^= 0x01
        return base64.b64encode(bytes(sealed)).decode()

    return b64_edit(path, change)


def trailing_bits(text: str) -> str:
    assert text.endswith("=="), text
    return text[:-3] + "B=="  # "B" has a non-zero low nibble


def parent_id(key_id: str) -> Mutation:
    return set_path("Key.ParentKeyMeta.KeyId", key_id)


def truncated(fraction: float) -> Mutation:
    return lambda w: w.record[: int(len(w.record) * fraction)]


MATRIX: dict[str, Mutation] = {
    # not a record at all
    "empty": lambda w: "",
    "not-json": lambda w: "not json",
    "json-array": lambda w: "[]",
    "json-null": lambda w: "null",
    "json-number": lambda w: "1",
    "json-string": lambda w: '"record"',
    "empty-object": lambda w: "{}",
    "non-utf8-bytes": lambda w: b"\xff\xfe" + w.record.encode(),
    "lone-surrogate": lambda w: w.record.replace('_prod"', '_prod\ud800"'),
    "escaped-lone-surrogate": lambda w: w.record.replace('_prod"', '_prod\\ud800"'),
    "trailing-garbage": lambda w: w.record + "}",
    # truncated
    **{f"truncated-{f}": truncated(f) for f in (0.01, 0.25, 0.5, 0.75, 0.99)},
    "truncated-last-char": lambda w: w.record[:-1],
    # missing fields
    "missing-Data": drop("Data"),
    "missing-Key": drop("Key"),
    "null-Key": set_path("Key", None),
    "missing-Key.Created": drop("Key.Created"),
    "missing-Key.Key": drop("Key.Key"),
    "missing-ParentKeyMeta": drop("Key.ParentKeyMeta"),
    "null-ParentKeyMeta": set_path("Key.ParentKeyMeta", None),
    "missing-ParentKeyMeta.KeyId": drop("Key.ParentKeyMeta.KeyId"),
    "missing-ParentKeyMeta.Created": drop("Key.ParentKeyMeta.Created"),
    # wrong types
    "Data-number": set_path("Data", 5),
    "Data-null": set_path("Data", None),
    "Data-list": set_path("Data", ["AQID"]),
    "Key-string": set_path("Key", "AQID"),
    "Key-list": set_path("Key", []),
    "Key.Created-string": set_path("Key.Created", "1700000000"),
    "Key.Created-float": set_path("Key.Created", 1.5),
    "Key.Created-bool": set_path("Key.Created", True),
    "Key.Created-too-big": set_path("Key.Created", 2**63),
    "Key.Key-null": set_path("Key.Key", None),
    "Key.Key-number": set_path("Key.Key", 7),
    "Key.Revoked-string": set_path("Key.Revoked", "no"),
    "ParentKeyMeta-string": set_path("Key.ParentKeyMeta", "_IK_a_svc_prod"),
    "ParentKeyMeta.KeyId-number": set_path("Key.ParentKeyMeta.KeyId", 1),
    "ParentKeyMeta.KeyId-null": set_path("Key.ParentKeyMeta.KeyId", None),
    "ParentKeyMeta.Created-string": set_path("Key.ParentKeyMeta.Created", "1"),
    "ParentKeyMeta.Created-float": set_path("Key.ParentKeyMeta.Created", 1699999980.0),
    # bad base64, in Data and in the wrapped key
    "Data-no-padding": b64_edit("Data", lambda t: t.rstrip("=")),
    "Data-trailing-bits": b64_edit("Data", trailing_bits),
    "Data-newline": b64_edit("Data", lambda t: t[:8] + "\n" + t[8:]),
    "Data-space": b64_edit("Data", lambda t: " " + t),
    "Data-url-safe": b64_edit("Data", lambda t: "-_" + t[2:]),
    "Data-non-ascii": b64_edit("Data", lambda t: "é" + t[1:]),
    "Data-empty": set_path("Data", ""),
    "Data-too-short": set_path("Data", base64.b64encode(bytes(27)).decode()),
    "Key.Key-truncated": b64_edit("Key.Key", lambda t: t[:-1]),
    "Key.Key-newline": b64_edit("Key.Key", lambda t: t[:40] + "\r\n" + t[40:]),
    "Key.Key-url-safe": b64_edit("Key.Key", lambda t: "_" + t[1:]),
    "Key.Key-empty": set_path("Key.Key", ""),
    "Key.Key-too-long": set_path("Key.Key", base64.b64encode(bytes(16_385)).decode()),
    # tampering: data, key, tag, nonce
    **{f"tampered-Data-{w}": flip("Data", w) for w in ("ciphertext", "tag", "nonce")},
    **{f"tampered-Key.Key-{w}": flip("Key.Key", w) for w in ("ciphertext", "tag", "nonce")},
    "tampered-ParentKeyMeta.Created+1": edit(
        lambda o: o["Key"]["ParentKeyMeta"].update(Created=o["Key"]["ParentKeyMeta"]["Created"] + 1)
    ),
    "tampered-ParentKeyMeta.Created-60": edit(
        lambda o: o["Key"]["ParentKeyMeta"].update(
            Created=o["Key"]["ParentKeyMeta"]["Created"] - 60
        )
    ),
    # swapped parts and partitions
    "Key-from-another-record": lambda w: json.dumps(
        {"Key": json.loads(w.second)["Key"], "Data": json.loads(w.record)["Data"]}
    ),
    "Key-from-another-partition": lambda w: json.dumps(
        {"Key": json.loads(w.other)["Key"], "Data": json.loads(w.record)["Data"]}
    ),
    "record-of-partition-b": lambda w: w.other,
    "record-of-partition-a_svc_prod_zz": lambda w: w.prefixed,
    # the partition gate
    "KeyId-of-partition-b": parent_id("_IK_b_svc_prod"),
    "KeyId-system-key": parent_id("_SK_svc_prod"),
    "KeyId-prefix-of-other": parent_id("_IK_a_svc_prod_zz_svc_prod"),
    "KeyId-region-upper-case": parent_id("_IK_a_svc_prod_US_WEST"),
    "KeyId-region-empty": parent_id("_IK_a_svc_prod_"),
    "KeyId-region-with-underscore": parent_id("_IK_a_svc_prod_us_west"),
    "KeyId-region-with-space": parent_id("_IK_a_svc_prod_us west"),
    "KeyId-region-newline": parent_id("_IK_a_svc_prod_us\n"),
    "KeyId-unknown-region": parent_id("_IK_a_svc_prod_us-west-2"),  # gate ok, no such key
    "KeyId-other-service": parent_id("_IK_a_svc2_prod"),
    "KeyId-empty": parent_id(""),
    "KeyId-too-long": parent_id("_IK_a_svc_prod_" + "x" * 5000),
}

#: Cases the partition gate itself must reject (before any key is looked up).
GATE_REJECTS = {
    name
    for name in MATRIX
    if name.startswith(("KeyId-", "record-of-partition-", "Key-from-another-partition"))
    and name not in ("KeyId-unknown-region", "KeyId-too-long")
}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_bad_record_is_one_decryption_error_and_writes_nothing(world: World, name: str) -> None:
    bad = MATRIX[name](world)
    assert bad != world.record
    with pytest.raises(DecryptionError) as caught:
        world.session.decrypt_bytes(bad)
    message = str(caught.value)
    if name in GATE_REJECTS:
        assert "another partition" in message
    assert "abc" not in message
    assert json.loads(world.record)["Data"] not in message
    world.assert_nothing_written()


def test_valid_record_still_decrypts_after_the_matrix(world: World) -> None:
    assert world.session.decrypt_bytes(world.record) == PLAINTEXT
    world.assert_nothing_written()


def test_gate_unit() -> None:
    ids = key_ids("a", "svc", "prod", None)
    accepted = ["_IK_a_svc_prod", "_IK_a_svc_prod_us-west-2", "_IK_a_svc_prod_eu-central-1"]
    rejected = [
        "_IK_a_svc_prod_US_WEST",
        "_IK_a_svc_prod_zz_svc_prod",
        "_IK_a_svc_prod_",
        "_IK_a_svc_prodx",
        "_IK_a_svc_pro",
        "_IK_b_svc_prod",
        "_IK_a_svc_prod_us-west-2\n",
        "_IK_a_svc_prod_ūs",
    ]
    assert [k for k in accepted if not ids.accepts_intermediate(k)] == []
    assert [k for k in rejected if ids.accepts_intermediate(k)] == []
    suffixed = key_ids("a", "svc", "prod", "us-west-2")
    assert suffixed.accepts_intermediate("_IK_a_svc_prod")
    assert suffixed.accepts_intermediate("_IK_a_svc_prod_us-east-1")


def copy_key_rows(source: InMemoryMetastore, target: InMemoryMetastore) -> None:
    for key_id, created, record in source.rows():
        if not key_id.startswith("__asherah_internal"):
            assert target.store(key_id, created, record)


@pytest.mark.parametrize(
    ("region", "accepted"), [("us-west-2", True), ("eu-central-1", True), ("US_WEST", False)]
)
def test_region_suffixed_records_from_another_region(region: str, accepted: bool) -> None:
    # A writer with a region suffix (its own metastore: the drift guard pins the suffix).
    written = InMemoryMetastore()
    with SessionFactory(config(RegionSuffix=region), metastore=written) as writer:
        record = writer.get_session("a").encrypt_bytes(b"from " + region.encode())
    assert json.loads(record)["Key"]["ParentKeyMeta"]["KeyId"] == f"_IK_a_svc_prod_{region}"
    # An unsuffixed reader with the same rows (a replicated table).
    memory = InMemoryMetastore()
    copy_key_rows(written, memory)
    counting = CountingMetastore(memory)
    with SessionFactory(config(), metastore=counting) as reader:
        writes = counting.writes
        session = reader.get_session("a")
        if accepted:
            assert session.decrypt_bytes(record) == b"from " + region.encode()
        else:
            with pytest.raises(DecryptionError, match="another partition"):
                session.decrypt_bytes(record)
        assert counting.writes == writes


def test_suffixed_session_reads_unsuffixed_records() -> None:
    memory = InMemoryMetastore()
    with SessionFactory(config(), metastore=memory) as plain:
        record = plain.get_session("a").encrypt_bytes(b"x")
    rows = InMemoryMetastore()
    copy_key_rows(memory, rows)
    with SessionFactory(config(RegionSuffix="us-west-2"), metastore=rows) as suffixed:
        assert suffixed.get_session("a").decrypt_bytes(record) == b"x"
        with pytest.raises(DecryptionError):
            suffixed.get_session("a_svc_prod_zz").decrypt_bytes(record)


def test_decrypt_text_of_binary_plaintext_is_a_decryption_error(world: World) -> None:
    record = world.session.encrypt_bytes(b"\xff\xfe")
    baseline = world.counts()
    with pytest.raises(DecryptionError, match="UTF-8"):
        world.session.decrypt_text(record)
    assert world.counts() == baseline


# -- fuzzing ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "AA==", "AQID", "_IK_a_svc_prod", "=", "\u0000"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["Key", "Data", "Created", "KeyId", "ParentKeyMeta", "Revoked", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=8,
)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += paths(value, (*prefix, key))
    return found


@st.composite
def mutated_records(draw: st.DrawFn, record: str) -> str | bytes:
    kind = draw(st.sampled_from(["chars", "structure", "bits", "bytes"]))
    if kind == "chars":
        text = record
        for _ in range(draw(st.integers(1, 3))):
            pos = draw(st.integers(0, len(text)))
            op = draw(st.sampled_from(["delete", "insert", "replace"]))
            char = draw(st.characters(codec="utf-8") | st.sampled_from(list('{}[]:,"\\=+/0 A')))
            if op == "delete":
                text = text[:pos] + text[pos + 1 :]
            elif op == "insert":
                text = text[:pos] + char + text[pos:]
            else:
                text = text[:pos] + char + text[pos + 1 :]
        return text
    if kind == "bytes":
        raw = bytearray(record.encode())
        pos = draw(st.integers(0, len(raw) - 1))
        raw[pos] = draw(st.integers(0, 255))
        return bytes(raw)
    obj = json.loads(record)
    if kind == "bits":
        field = draw(st.sampled_from([("Data",), ("Key", "Key")]))
        holder = obj if len(field) == 1 else obj["Key"]
        sealed = bytearray(base64.b64decode(holder[field[-1]]))
        bit = draw(st.integers(0, len(sealed) * 8 - 1))
        sealed[bit // 8] ^= 1 << (bit % 8)
        holder[field[-1]] = base64.b64encode(bytes(sealed)).decode()
        return json.dumps(obj)
    path = draw(st.sampled_from(paths(obj)))
    if not path:
        return json.dumps(draw(json_values))
    target = obj
    for part in path[:-1]:
        target = target[part]
    if draw(st.booleans()):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(json_values)
    return json.dumps(obj, separators=(",", ":") if draw(st.booleans()) else None)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_records_raise_only_asherah_errors(world: World, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(["record", "second", "other", "prefixed"]))
    original = getattr(world, source)
    mutated = data.draw(mutated_records(copy.copy(original)))
    try:
        plaintext = world.session.decrypt_bytes(mutated)
    except AsherahError:
        pass
    else:
        # Only harmless edits (whitespace, unknown fields, the DRK's own Created) may
        # decrypt, and then to exactly the original plaintext of partition "a".
        assert source in ("record", "second")
        assert plaintext == {"record": PLAINTEXT, "second": b"another one"}[source]
    world.assert_nothing_written()


def test_decrypt_on_an_empty_metastore_creates_nothing(world: World) -> None:
    # The reference's recovery may write ("self-heal") on the decrypt path; we never do.
    metastore = CountingMetastore(InMemoryMetastore())
    kms = CountingKms(StaticKeyManagementService(bytes.fromhex(KEY_HEX)))
    with SessionFactory(config(), metastore=metastore, kms=kms) as factory:
        writes = metastore.writes  # the drift-guard row written at start-up
        with pytest.raises(DecryptionError, match="intermediate key not found"):
            factory.get_session("a").decrypt_bytes(world.record)
        assert metastore.writes == writes
        assert kms.calls["encrypt_key"] == 0
        assert [k for k, _, _ in metastore.inner.rows() if not k.startswith("__")] == []
