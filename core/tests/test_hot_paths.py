"""The inlined encrypt and decrypt hot paths agree with the general paths they short-cut.

The fast record parser must return exactly what the general parser returns, or decline (then
the general parser decides); a session must give the same results, events and errors whether a
call took the hot path or not; the hot path must keep the eviction policy informed.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asherah import DecryptionError, SessionFactory, set_metrics_hook
from asherah._data_row import _general, parse_data_row, parse_fast
from asherah._errors import AsherahError
from asherah._observe import DISPATCH
from asherah._session import PARSE_WHOLE_UP_TO

from .conftest import static_config
from .test_bad_input import mutated_records

CONFIG = static_config()


@pytest.fixture(scope="module")
def records() -> list[str]:
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        return [session.encrypt_bytes(b"x" * size) for size in (0, 1, 2, 3, 64, 1000)]


def _general_or_error(record: str) -> tuple[bytes, str, int, bytes] | type[Exception]:
    try:
        row = _general(record)
    except DecryptionError:
        return DecryptionError
    return (row.wrapped_key, row.key_id, row.key_created, row.data)


def test_fast_parser_reads_every_record_an_engine_writes(records: list[str]) -> None:
    for record in records:
        fast = parse_fast(record)
        assert fast is not None
        assert fast == _general_or_error(record)


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.replace('{"Key":{', '{ "Key":{', 1),  # whitespace: general only
        lambda r: r.replace('"Created":', '"Revoked":false,"Created":', 1),
        lambda r: r.replace('"Created":', '"Revoked":1,"Created":', 1),  # wrong type
        lambda r: r.replace('"Created":', '"Created":9223372036854775808,"x":', 1),
        lambda r: r[:-3] + 'B"}',  # non-zero trailing bits before the padding
        lambda r: r[:-2] + '="}',  # bad length
        lambda r: r.replace('"Key":"', '"Key":"A', 1),  # wrapped key of 81 characters
        lambda r: r.replace('"KeyId":"', '"KeyId":"' + "k" * 2000, 1),  # long id: slow way
        lambda r: r.replace(',"Data":"', ',"Data":"x', 1),
        lambda r: r.replace('"}', '"', 1),
    ],
)
def test_fast_parser_declines_or_agrees_on_edge_cases(records: list[str], edit: Any) -> None:
    record = edit(records[2])  # two data bytes: the Data field ends in one "="
    fast = parse_fast(record)
    expected = _general_or_error(record)
    if fast is not None:
        assert fast == expected
    if expected is DecryptionError:
        assert fast is None
        with pytest.raises(DecryptionError):
            parse_data_row(record)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_fast_parser_never_disagrees_with_the_general_one(data: st.DataObject) -> None:
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        record = session.encrypt_bytes(data.draw(st.binary(max_size=40)))
    mutated = data.draw(mutated_records(record))
    if not isinstance(mutated, str):
        return
    fast = parse_fast(mutated)
    if fast is not None:
        assert fast == _general_or_error(mutated)


def test_hot_and_general_paths_give_the_same_answers(records: list[str]) -> None:
    events: list[dict[str, Any]] = []
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        hot = [session.encrypt_bytes(b"payload %d" % i) for i in range(3)]
        set_metrics_hook(events.append)  # metrics on: every call takes the general path
        try:
            general = [session.encrypt_bytes(b"payload %d" % i) for i in range(3)]
            assert [session.decrypt_bytes(r) for r in hot] == [b"payload %d" % i for i in range(3)]
            DISPATCH.flush()  # metrics are delivered on a worker thread
            assert any(e.get("type") == "encrypt" for e in events)
            assert any(e.get("type") == "decrypt" for e in events)
        finally:
            set_metrics_hook(None)
        count = len(events)
        assert [session.decrypt_bytes(r) for r in general] == [b"payload %d" % i for i in range(3)]
        DISPATCH.flush()
        assert len(events) == count  # no hook, no events, hot path again
        for record in hot + general:
            shape = json.loads(record)
            assert list(shape) == ["Key", "Data"]
            assert list(shape["Key"]) == ["Created", "Key", "ParentKeyMeta"]
            assert len(base64.b64decode(shape["Key"]["Key"])) == 60


def test_tampered_record_with_a_cached_key_is_a_decryption_error() -> None:
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        record = json.loads(session.encrypt_bytes(b"secret"))
        sealed = bytearray(base64.b64decode(record["Data"]))
        sealed[0] ^= 1
        record["Data"] = base64.b64encode(bytes(sealed)).decode()
        with pytest.raises(DecryptionError, match="does not authenticate"):
            session.decrypt_bytes(json.dumps(record, separators=(",", ":")))
        wrapped = bytearray(base64.b64decode(record["Key"]["Key"]))
        wrapped[5] ^= 1
        record["Key"]["Key"] = base64.b64encode(bytes(wrapped)).decode()
        with pytest.raises(DecryptionError, match="data row key"):
            session.decrypt_bytes(json.dumps(record, separators=(",", ":")))


@pytest.mark.parametrize("size", [0, 16, 28, 31, 33, 36, 64])
def test_a_wrapped_key_of_another_size_is_refused_even_when_it_authenticates(size: int) -> None:
    # Only a holder of the IK can make one; both paths refuse it, as the general parser does.
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        record = json.loads(session.encrypt_bytes(b"secret"))
        cipher = session._latest[session._ik_id].key.prepared
        nonce = os.urandom(12)
        wrapped = cipher.encrypt(nonce, os.urandom(size), None) + nonce
        record["Key"]["Key"] = base64.b64encode(wrapped).decode()
        crafted = json.dumps(record, separators=(",", ":"))
        with pytest.raises(AssertionError, match="general path"):
            _inline_only(session, crafted)
        with pytest.raises(DecryptionError, match="data row key"):
            session.decrypt_bytes(crafted)


def test_closed_session_and_factory_refuse_the_hot_path() -> None:
    factory = SessionFactory(CONFIG)
    session = factory.get_session("a")
    record = session.encrypt_bytes(b"x")
    other = factory.get_session("a")
    session.close()
    with pytest.raises(AsherahError, match="session is closed"):
        session.encrypt_bytes(b"x")
    with pytest.raises(AsherahError, match="session is closed"):
        session.decrypt_bytes(record)
    factory.close()
    with pytest.raises(AsherahError, match="closed"):
        other.encrypt_bytes(b"x")
    with pytest.raises(AsherahError, match="closed"):
        other.decrypt_bytes(record)


def test_hot_path_keeps_a_busy_key_from_eviction() -> None:
    now = [1_000_000.0]
    config = {**CONFIG, "IntermediateKeyCacheMaxSize": 2, "SessionCacheMaxSize": 10}
    with SessionFactory(config, clock=lambda: now[0]) as factory:
        busy, idle, newcomer = (factory.get_session(p) for p in ("busy", "idle", "new"))
        busy_record = busy.encrypt_bytes(b"b")
        idle.encrypt_bytes(b"i")
        now[0] += 5  # past the touch sampling interval
        busy.encrypt_bytes(b"b")  # hot path: tells the LRU policy "busy" was used
        cache = factory._keys.intermediate_keys
        newcomer.encrypt_bytes(b"n")  # evicts the least recently used: "idle"
        cached_ids = {key_id for key_id, _ in cache.exact_entries}
        assert cached_ids == {"_IK_busy_svc_prod", "_IK_new_svc_prod"}
        assert busy.decrypt_bytes(busy_record) == b"b"


def test_hot_decrypt_tells_the_eviction_policy_once_a_second_on_the_engine_clock() -> None:
    now = [1_000_000.0]
    config = {**CONFIG, "IntermediateKeyCacheMaxSize": 2}  # one key is half full: watched
    with SessionFactory(config, clock=lambda: now[0]) as factory, factory.get_session("a") as s:
        records = [s.encrypt_bytes(b"r%d" % i) for i in range(3)]
        cache = factory._keys.intermediate_keys
        heard: list[object] = []
        policy_touch = cache._policy.touch
        cache._policy.touch = lambda key: (heard.append(key), policy_touch(key))  # type: ignore[method-assign]
        touch = cache.touch
        calls: list[float | None] = []

        def counting_touch(key_id: str, key: Any, when: float | None = None) -> None:
            calls.append(when)
            touch(key_id, key, when)

        s._ik_cache.touch = counting_touch  # type: ignore[method-assign]
        for _ in range(50):
            assert [s.decrypt_bytes(r) for r in records] == [b"r0", b"r1", b"r2"]
        assert calls == []  # used within the second: no bookkeeping at all
        assert heard == []
        now[0] += 5
        assert s.decrypt_bytes(records[0]) == b"r0"
        assert s.decrypt_bytes(records[1]) == b"r1"
        assert calls == [now[0]]  # sampled on the factory clock, once
        assert heard == [("_IK_a_svc_prod", heard[0][1])]  # type: ignore[index]


def test_hot_paths_watch_use_only_once_the_cache_is_half_full() -> None:
    now = [1_000_000.0]
    config = {**CONFIG, "IntermediateKeyCacheMaxSize": 6}
    with SessionFactory(config, clock=lambda: now[0]) as factory:
        cache = factory._keys.intermediate_keys
        heard: list[str] = []
        policy_touch = cache._policy.touch

        def hear(key: Any) -> None:
            heard.append(key[0])
            policy_touch(key)

        cache._policy.touch = hear  # type: ignore[method-assign]
        sessions = {p: factory.get_session(p) for p in "abcdefg"}
        first = {p: sessions[p].encrypt_bytes(p.encode()) for p in "ab"}
        now[0] += 5
        for p in "ab":  # two of six: nothing can be evicted soon, so nobody is told
            assert sessions[p].decrypt_bytes(first[p]) == p.encode()
            sessions[p].encrypt_bytes(b"again")
        assert not cache.watching
        assert heard == []
        sessions["c"].encrypt_bytes(b"c")  # three of six: watched from now on
        assert cache.watching
        now[0] += 5
        assert sessions["a"].decrypt_bytes(first["a"]) == b"a"
        assert heard == ["_IK_a_svc_prod"]
        for p in "defg":  # fills the cache and evicts the least recently used: "b", not "a"
            sessions[p].encrypt_bytes(p.encode())
        cached = {key_id for key_id, _ in cache.exact_entries}
        assert "_IK_a_svc_prod" in cached
        assert "_IK_b_svc_prod" not in cached
        assert sessions["b"].decrypt_bytes(first["b"]) == b"b"  # reloaded, still decrypts


@pytest.mark.parametrize("offset", range(-1, 5))
def test_large_payload_base64_in_two_parts_is_one_canonical_string(offset: int) -> None:
    from asherah._session import _SPLIT_FROM

    plaintext = bytes(range(256)) * ((_SPLIT_FROM + offset) // 256 + 1)
    plaintext = plaintext[: _SPLIT_FROM + offset]
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        record = session.encrypt_bytes(plaintext)
        data = json.loads(record)["Data"]
        sealed = base64.b64decode(data, validate=True)
        assert len(sealed) == len(plaintext) + 28
        assert base64.b64encode(sealed).decode() == data  # canonical: padding, trailing bits
        assert session.decrypt_bytes(record) == plaintext


def test_bad_endings_match_the_trailing_bit_rule() -> None:
    from asherah import _b64

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for a in alphabet:
        for c in alphabet:
            for ending in (a + c + "=", c + "=="):
                assert (ending in _b64.BAD_ENDINGS) == _b64.nonzero_trailing_bits("A" + ending)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _set_unused_bits(record: str) -> str:
    """Set an unused bit of the Data field's last character: same bytes, non-canonical text."""
    if record.endswith('=="}'):
        index = len(record) - 5
    elif record.endswith('="}'):
        index = len(record) - 4
    else:
        return record
    char = _ALPHABET[_ALPHABET.index(record[index]) | 1]
    return record[:index] + char + record[index + 1 :]


def _outcome(call: Any, record: Any) -> object:
    try:
        return call(record)
    except AsherahError as exc:
        return type(exc)


@pytest.fixture(scope="module")
def warm() -> Any:
    factory = SessionFactory(CONFIG)
    session = factory.get_session("a")
    records = [session.encrypt_bytes(b"x" * size) for size in (0, 1, 2, 3, 64, 200)]
    records.append(factory.get_session("a_svc_prod_zz").encrypt_bytes(b"other partition"))
    yield session, records
    factory.close()


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_cached_decrypt_never_accepts_what_the_general_path_refuses(
    warm: Any, data: st.DataObject
) -> None:
    session, records = warm
    record = data.draw(st.sampled_from(records))
    mutated = data.draw(mutated_records(record))
    assert _outcome(session.decrypt_bytes, mutated) == _outcome(session._decrypt_general, mutated)


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.replace('"Created":', '"Revoked":true,"Created":', 1),  # still decrypts
        lambda r: r.replace('"Created":', '"Revoked":"yes","Created":', 1),
        lambda r: r.replace('{"Key":{"Created":', '{"Key":{"Created":"', 1).replace(",", '",', 1),
        lambda r: r.replace('"}},"Data"', '".0}},"Data"', 1),
        lambda r: r.replace('"ParentKeyMeta":{"KeyId":"', '"ParentKeyMeta":{"KeyId":"x', 1),
        lambda r: r.replace('"Key":"', '"Key":"AAAA', 1),
        lambda r: r.replace('"Key":"', '"Key":["', 1),
        lambda r: r[:-3] + '/"}',
        lambda r: _set_unused_bits(r),
        lambda r: json.dumps(json.loads(r)),  # spaces after separators
        lambda r: json.dumps(dict(reversed(json.loads(r).items()))),  # Data first
        lambda r: r.replace(',"Data":"', ',"Data":"\\u0041', 1)[:-3] + '"}',  # escaped char
        lambda r: r.replace(',"Data":"', ',"Data":"\\u0041\\u0041\\u0041\\u0041', 1),
        lambda r: r.replace('{"Key":', '{"Data":null,"Key":', 1),  # duplicate field, last wins
        *(  # Data of another JSON type
            (lambda r, v=value: r[: r.index(',"Data":"')] + f',"Data":{v}}}')
            for value in ("null", "1", "true", '["AAAA"]', '{"a":"AAAA"}', '"AAAA"')
        ),
    ],
)
def test_cached_decrypt_agrees_on_edge_cases(warm: Any, edit: Any) -> None:
    session, records = warm
    for record in records:
        mutated = edit(record)
        assert _outcome(session.decrypt_bytes, mutated) == _outcome(
            session._decrypt_general, mutated
        )


def _inline_only(session: Any, record: str) -> bytes:
    """Decrypt with the general path made to fail: only the inline path can answer."""
    from asherah._session import Session

    def refuse(self: object, record: object) -> bytes:
        raise AssertionError("took the general path")

    general = Session._decrypt_general
    Session._decrypt_general = refuse  # type: ignore[method-assign,assignment]
    try:
        plaintext: bytes = session.decrypt_bytes(record)
    finally:
        Session._decrypt_general = general  # type: ignore[method-assign]
    return plaintext


def test_short_records_of_any_json_layout_take_the_inline_path() -> None:
    with SessionFactory(CONFIG) as factory, factory.get_session("a") as session:
        for size in (0, 1, 64, 1000, 4000):
            record = session.encrypt_bytes(b"y" * size)
            assert _inline_only(session, record) == b"y" * size
            spaced = json.dumps(json.loads(record), indent=1)
            reordered = json.dumps(dict(reversed(json.loads(record).items())))
            for layout in (spaced, reordered):
                if len(layout) <= PARSE_WHOLE_UP_TO:  # parsed whole; longer: the usual layout
                    assert _inline_only(session, layout) == b"y" * size
                else:
                    assert session.decrypt_bytes(layout) == b"y" * size
        other = factory.get_session("b").encrypt_bytes(b"z")
        with pytest.raises(AssertionError, match="general path"):
            _inline_only(session, other)  # another partition: declined


@settings(max_examples=300, deadline=None)
@given(
    partition=st.text(min_size=1, max_size=12),
    region=st.none() | st.sampled_from(["us-west-2", "eu1"]),
)
def test_key_id_maker_agrees_with_key_ids(partition: str, region: str | None) -> None:
    from asherah._key_ids import KeyIdMaker, key_ids

    maker = KeyIdMaker("svc", "prod", region)
    try:
        expected: object = key_ids(partition, "svc", "prod", region)
    except Exception as exc:  # a lone surrogate
        expected = type(exc)
    try:
        got: object = maker(partition)
    except Exception as exc:
        got = type(exc)
    assert got == expected


def test_key_id_maker_reports_a_bad_service_at_get_session() -> None:
    from asherah._key_ids import KeyIdMaker

    maker = KeyIdMaker("svc\ud800", "prod", None)  # construction never raises
    with pytest.raises(AsherahError, match="service name"):
        maker("p")


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=20))
def test_json_string_fast_path_matches_the_encoder(value: str) -> None:
    from asherah._records import json_string

    assert json_string(value) == json.dumps(value, ensure_ascii=False)
