"""Rotation with an injectable clock: expiry, revocation (also inside one precision minute),
system-key rotation at the next intermediate key, concurrency, and decrypt never checking."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from asherah import DecryptionError

START = 1_699_999_980  # the fake clock's start: a whole minute
IK = "_IK_p1_svc_prod"
SK = "_SK_svc_prod"
HOUR = 3600


def parent_of(record: str) -> tuple[str, int]:
    meta = json.loads(record)["Key"]["ParentKeyMeta"]
    return meta["KeyId"], meta["Created"]


def drk_created(record: str) -> int:
    created: int = json.loads(record)["Key"]["Created"]
    return created


def rotation_config(**overrides: Any) -> dict[str, Any]:
    return {"ExpireAfter": HOUR, "CheckInterval": 600, **overrides}


def test_key_created_is_truncated_and_the_data_row_key_is_not(make_factory, clock) -> None:
    clock.advance(37.9)
    record = make_factory().get_session("p1").encrypt_bytes(b"x")
    assert parent_of(record) == (IK, START)
    assert drk_created(record) == START + 37


def test_one_intermediate_key_until_it_expires(make_factory, clock, memory, key_rows) -> None:
    session = make_factory(**rotation_config()).get_session("p1")
    first = session.encrypt_bytes(b"a")
    clock.advance(HOUR - 1)  # 3599 s old: not yet expired
    assert parent_of(session.encrypt_bytes(b"b")) == (IK, START)
    clock.advance(1)  # now - created == expire_after: expired (>=)
    third = session.encrypt_bytes(b"c")
    assert parent_of(third) == (IK, START + HOUR)
    assert [r.created for r in key_rows(memory, IK)] == [START, START + HOUR]
    assert session.decrypt_bytes(first) == b"a"
    assert session.decrypt_bytes(third) == b"c"


def test_expiry_is_seen_while_the_latest_key_is_still_cached(make_factory, clock) -> None:
    # Check interval far longer than the key lifetime: expiry must not wait for the cache.
    session = make_factory(ExpireAfter=120, CheckInterval=HOUR).get_session("p1")
    session.encrypt_bytes(b"a")
    clock.advance(120)
    assert parent_of(session.encrypt_bytes(b"b"))[1] == START + 120


def test_revocation_is_noticed_when_the_check_interval_lapses(
    make_factory, clock, memory, revoke
) -> None:
    session = make_factory(**rotation_config()).get_session("p1")
    old = session.encrypt_bytes(b"old")
    revoke(memory, IK)
    clock.advance(599)  # the cached latest key is still fresh
    assert parent_of(session.encrypt_bytes(b"warm")) == (IK, START)
    clock.advance(1)
    new = session.encrypt_bytes(b"new")
    assert parent_of(new) == (IK, START + 600)
    assert session.decrypt_bytes(old) == b"old"


def test_revoked_key_is_replaced_inside_its_own_minute(
    make_factory, clock, memory, revoke, key_rows
) -> None:
    # The reference cannot create the replacement until the next minute; we must.
    session = make_factory(CheckInterval=1).get_session("p1")
    old = session.encrypt_bytes(b"old")
    revoke(memory, IK)
    clock.advance(1)
    replacement = session.encrypt_bytes(b"new")
    assert parent_of(replacement) == (IK, START + 1)
    revoke(memory, IK)
    clock.advance(1)  # still the same precision minute
    assert parent_of(session.encrypt_bytes(b"newer")) == (IK, START + 2)
    rows = key_rows(memory, IK)
    assert [(r.created, r.revoked) for r in rows] == [
        (START, True),
        (START + 1, True),
        (START + 2, None),
    ]
    assert session.decrypt_bytes(old) == b"old"
    assert session.decrypt_bytes(replacement) == b"new"


def test_cold_start_on_a_revoked_latest_key_in_the_same_minute(
    make_factory, clock, memory, revoke
) -> None:
    old = make_factory().get_session("p1").encrypt_bytes(b"old")
    revoke(memory, IK)
    fresh = make_factory().get_session("p1")  # no cache: sees the revocation at once
    record = fresh.encrypt_bytes(b"new")
    assert parent_of(record) == (IK, START + 1)
    assert fresh.decrypt_bytes(old) == b"old"


def test_system_key_revocation_takes_effect_at_the_next_intermediate_key(
    make_factory, clock, memory, revoke, key_rows
) -> None:
    session = make_factory(ExpireAfter=10 * HOUR, CheckInterval=600).get_session("p1")
    first = session.encrypt_bytes(b"1")
    revoke(memory, SK)
    clock.advance(600)  # the IK is re-checked: still valid, so it stays, on its old SK
    second = session.encrypt_bytes(b"2")
    assert parent_of(second) == (IK, START)
    assert [r.created for r in key_rows(memory, SK)] == [START]
    # A fresh factory (cold caches, so it loads the revoked SK) keeps using the valid IK too.
    cold = make_factory(ExpireAfter=10 * HOUR).get_session("p1")
    assert parent_of(cold.encrypt_bytes(b"2b")) == (IK, START)
    revoke(memory, IK)
    clock.advance(600)
    third = session.encrypt_bytes(b"3")
    new_ik = key_rows(memory, IK)[-1]
    assert parent_of(third) == (IK, new_ik.created)
    assert new_ik.parent_key_meta is not None
    assert new_ik.parent_key_meta.key_id == SK
    assert new_ik.parent_key_meta.created > START
    assert [r.created for r in key_rows(memory, SK)] == [START, new_ik.parent_key_meta.created]
    for record, plain in ((first, b"1"), (second, b"2"), (third, b"3")):
        assert session.decrypt_bytes(record) == plain


def test_revoked_system_key_does_not_make_every_encrypt_reload(
    make_factory, memory, counting, revoke
) -> None:
    make_factory().get_session("p1").encrypt_bytes(b"seed")
    revoke(memory, SK)
    session = make_factory().get_session("p1")  # cold: loads the IK and its revoked SK
    before = counting.calls["load_latest"]
    for _ in range(10):
        assert parent_of(session.encrypt_bytes(b"x")) == (IK, START)
    # One reload of the latest IK, then the cached key serves until the check interval.
    assert counting.calls["load_latest"] - before == 1


def test_simultaneous_expiry_gives_a_new_ik_under_a_new_sk(
    make_factory, clock, memory, key_rows
) -> None:
    session = make_factory(**rotation_config()).get_session("p1")
    session.encrypt_bytes(b"a")
    clock.advance(HOUR + 7)
    record = session.encrypt_bytes(b"b")
    assert parent_of(record) == (IK, START + HOUR)
    new_ik = key_rows(memory, IK)[-1]
    assert new_ik.parent_key_meta is not None
    assert (new_ik.parent_key_meta.key_id, new_ik.parent_key_meta.created) == (SK, START + HOUR)


def test_partitions_share_the_system_key(make_factory, memory, key_rows) -> None:
    factory = make_factory()
    for partition in ("a", "b", "c"):
        factory.get_session(partition).encrypt_bytes(b"x")
    assert len(key_rows(memory, SK)) == 1
    for partition in ("a", "b", "c"):
        assert len(key_rows(memory, f"_IK_{partition}_svc_prod")) == 1


def test_short_expiry_clamps_the_precision(make_factory, clock) -> None:
    clock.advance(45)
    record = make_factory(ExpireAfter=30).get_session("p1").encrypt_bytes(b"x")
    assert parent_of(record) == (IK, START + 30)


# -- decrypt never checks expiry or revocation (unless asked) ---------------------------------


@pytest.fixture
def old_records(make_factory, clock, memory, revoke) -> dict[str, str]:
    """A record under a now revoked IK/SK pair, and one under an expired IK."""
    session = make_factory(**rotation_config()).get_session("p1")
    revoked = session.encrypt_bytes(b"revoked")
    revoke(memory, IK)
    revoke(memory, SK)
    clock.advance(HOUR)
    expired = session.encrypt_bytes(b"expired")  # a new IK and SK
    clock.advance(100 * 24 * HOUR)
    return {"revoked": revoked, "expired": expired}


def test_decrypt_ignores_expiry_and_revocation(make_factory, counting, old_records) -> None:
    writes = counting.writes
    session = make_factory(**rotation_config()).get_session("p1")  # cold caches
    assert session.decrypt_bytes(old_records["revoked"]) == b"revoked"
    assert session.decrypt_bytes(old_records["expired"]) == b"expired"
    assert counting.writes == writes


def test_deny_revoked_on_decrypt_refuses_revoked_keys_only(
    make_factory, counting, old_records
) -> None:
    writes = counting.writes
    session = make_factory(DenyRevokedOnDecrypt=True, **rotation_config()).get_session("p1")
    with pytest.raises(DecryptionError, match="revoked"):
        session.decrypt_bytes(old_records["revoked"])
    assert session.decrypt_bytes(old_records["expired"]) == b"expired"  # expired is fine
    assert counting.writes == writes


def test_deny_revoked_on_decrypt_sees_a_system_key_revocation(make_factory, memory, revoke) -> None:
    record = make_factory().get_session("p1").encrypt_bytes(b"x")
    revoke(memory, SK)
    session = make_factory(deny_revoked_on_decrypt=True).get_session("p1")
    with pytest.raises(DecryptionError, match="revoked"):
        session.decrypt_bytes(record)


# -- concurrency ------------------------------------------------------------------------------


def run_threads(count: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = target(index)
        except BaseException as exc:  # reported below, on the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def test_threads_crossing_expiry_create_exactly_one_new_ik(
    make_factory, clock, memory, counting, key_rows
) -> None:
    session = make_factory(**rotation_config()).get_session("p1")
    session.encrypt_bytes(b"warm")
    clock.advance(HOUR)
    stores_before = counting.calls["store"]
    records = run_threads(8, lambda i: session.encrypt_bytes(bytes([i])))
    assert {parent_of(r) for r in records} == {(IK, START + HOUR)}
    assert [r.created for r in key_rows(memory, IK)] == [START, START + HOUR]
    assert counting.calls["store"] - stores_before == 2  # one IK and one SK, nothing else
    for i, record in enumerate(records):
        assert session.decrypt_bytes(record) == bytes([i])


def test_factories_racing_on_one_metastore_converge_on_one_ik(
    make_factory, clock, memory, key_rows
) -> None:
    # Separate factories have separate caches: only insert-if-absent keeps one key.
    factories = [make_factory(**rotation_config()) for _ in range(6)]
    factories[0].get_session("p1").encrypt_bytes(b"warm")
    clock.advance(HOUR)
    records = run_threads(6, lambda i: factories[i].get_session("p1").encrypt_bytes(bytes([i])))
    assert {parent_of(r) for r in records} == {(IK, START + HOUR)}
    assert [r.created for r in key_rows(memory, IK)] == [START, START + HOUR]
    assert len(key_rows(memory, SK)) == 2
    for i, record in enumerate(records):
        assert factories[(i + 1) % 6].get_session("p1").decrypt_bytes(record) == bytes([i])


def test_cached_key_is_reused_without_metastore_reads(make_factory, counting, clock) -> None:
    session = make_factory(**rotation_config()).get_session("p1")
    session.encrypt_bytes(b"a")
    calls = dict(counting.calls)
    for _ in range(20):
        clock.advance(10)
        session.encrypt_bytes(b"b")
    assert dict(counting.calls) == calls


def test_deny_revoked_on_decrypt_rechecks_cached_keys_each_interval(
    make_factory, clock, memory, counting, revoke
) -> None:
    session = make_factory(DenyRevokedOnDecrypt=True, CheckInterval=600).get_session("p1")
    record = session.encrypt_bytes(b"x")
    assert session.decrypt_bytes(record) == b"x"
    loads = counting.calls["load"]
    revoke(memory, IK)
    clock.advance(599)  # the cached key is trusted for one check interval, like on encrypt
    assert session.decrypt_bytes(record) == b"x"
    assert counting.calls["load"] == loads
    clock.advance(1)
    with pytest.raises(DecryptionError, match="revoked"):
        session.decrypt_bytes(record)
    writes = counting.writes
    with pytest.raises(DecryptionError, match="revoked"):
        session.decrypt_bytes(record)
    assert counting.writes == writes


def test_deny_revoked_on_decrypt_rechecks_the_system_key(
    make_factory, clock, memory, revoke
) -> None:
    session = make_factory(DenyRevokedOnDecrypt=True, CheckInterval=600).get_session("p1")
    record = session.encrypt_bytes(b"x")
    assert session.decrypt_bytes(record) == b"x"
    revoke(memory, SK)
    clock.advance(600)
    with pytest.raises(DecryptionError, match="revoked"):
        session.decrypt_bytes(record)


def test_without_deny_decrypt_does_not_read_the_metastore_again(
    make_factory, clock, counting, memory, revoke
) -> None:
    session = make_factory(CheckInterval=600).get_session("p1")
    record = session.encrypt_bytes(b"x")
    session.decrypt_bytes(record)
    calls = dict(counting.calls)
    revoke(memory, IK)
    clock.advance(10 * 600)
    assert session.decrypt_bytes(record) == b"x"
    assert dict(counting.calls) == calls
