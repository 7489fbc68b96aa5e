"""Secure memory end to end, through ``SessionFactory``: hardening, memory scans, tiers, modes.

Hardening is process-wide and the scans must see a process whose history is known, so those
tests run in a child interpreter that prints one JSON line. The measured scan counts are
printed (``pytest -s`` or ``-rP`` shows them) and written down in ``docs/security.md``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import asherah
from asherah import SessionFactory
from testsupport.child import ONE_PAGE_MEMLOCK, run_json
from testsupport.hardening_probe import HARDENING_RESULT

from .conftest import static_config

KEY_HEX = "3f" * 32


def config(**overrides: Any) -> dict[str, Any]:
    return static_config(StaticMasterKeyHex=KEY_HEX, **overrides)


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter; it prints the JSON result."""
    result: dict[str, Any] = run_json(script, *args, timeout=120)
    return result


# -- 1. process hardening ----------------------------------------------------------------------


def test_factory_start_turns_core_dumps_and_dumpable_off(request: pytest.FixtureRequest) -> None:
    # Probed at session start (testsupport.hardening_probe): once any factory has hardened this
    # pytest process, children inherit RLIMIT_CORE = 0/0 and cannot raise it again.
    result = request.config.stash[HARDENING_RESULT]
    assert result["before"]["core"] != [0, 0]
    assert result["before"]["dumpable"] == 1
    assert result["after"] == {"core": [0, 0], "dumpable": 0}
    assert result["again"] == result["after"]
    assert result["works"] is True


# -- 2. memory scan ----------------------------------------------------------------------------

SCAN_CHILD = """
import json, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from asherah import InMemoryMetastore, SessionFactory
from asherah.hazmat.memory import MemoryScanner, decrypt_into, random_key, wipe

MASTER_HEX = "3f" * 32
mode, schedules = sys.argv[1], sys.argv[2] == "1"


def count(scanner, protected):
    found = scanner.count(include_protected=protected)
    # The read window keeps the last chunk it read, which another scanner would then count:
    # zero it after every scan.
    window = len(scanner._map) - scanner._length
    scanner._map[scanner._length:] = bytes(window)
    return found


def unwrap(key, sealed):
    # Straight into a bytearray (never a bytes), then into a scanner, which wipes it.
    view = memoryview(sealed)
    out = bytearray(32)
    decrypt_into(key, view[-12:], view[:-12], out)
    return out


def scanners_from_rows(metastore):
    master = bytearray.fromhex(MASTER_HEX)
    rows = [row for row in metastore.rows() if row[0].startswith(("_SK_", "_IK_"))]
    system = {}
    for key_id, created, record in rows:
        if key_id.startswith("_SK_"):
            system[(key_id, created)] = unwrap(master, record.encrypted_key)
    wipe(master)
    scanners = {}
    for key_id, _created, record in rows:
        if key_id.startswith("_IK_"):
            parent = record.parent_key_meta
            scanners[key_id] = MemoryScanner(
                unwrap(system[(parent.key_id, parent.created)], record.encrypted_key)
            )
    for (key_id, _created), key in system.items():
        scanners[key_id] = MemoryScanner(key)
    return scanners


def snapshot(scanners):
    return {
        "readable": {name: count(s, False) for name, s in sorted(scanners.items())},
        "protected": {name: count(s, True) for name, s in sorted(scanners.items())},
    }


# Calibration: verbatim key copies one live AESGCM object holds (2 with AES-NI: the raw key
# starts the expanded schedule of each of its encrypt and decrypt contexts).
key = random_key()
calibrate = MemoryScanner(bytearray(key))
cipher = AESGCM(key)
wipe(key)
per_cipher = count(calibrate, False)
del cipher
freed = count(calibrate, False)
calibrate.close()

config = {"ServiceName": "svc", "ProductID": "prod", "Metastore": "memory", "KMS": "static",
          "StaticMasterKeyHex": MASTER_HEX, "secure_memory": mode,
          "cache_key_schedules": schedules}
metastore = InMemoryMetastore()
phases = {}
scanners = None
# "create": the factory makes the SK and IKs; "load": a second factory unwraps them from the
# rows (the KMS and IK unwrap paths).
for phase in ("create", "load"):
    factory = SessionFactory(config, metastore=metastore)
    records = {}
    for partition in ("alice", "bob"):
        with factory.get_session(partition) as session:
            for i in range(3):
                records[(partition, i)] = session.encrypt_bytes(b"record %d" % i)
            for (owner, i), record in records.items():
                if owner == partition:
                    assert session.decrypt_bytes(record) == b"record %d" % i
    if scanners is None:
        scanners = scanners_from_rows(metastore)
    running = snapshot(scanners)
    factory.close()  # the factory object, its sessions' locals and records stay referenced
    phases[phase] = {"running": running, "closed": snapshot(scanners)}
print(json.dumps({"per_cipher": per_cipher, "freed": freed, "phases": phases,
                  "keys": sorted(scanners)}))
"""

#: Readable / with-PROT_NONE copies of one idle cached key, before any cached key schedule.
AT_REST = {"mlock": (0, 1), "encrypted": (0, 0), "none": (1, 1)}


@pytest.mark.parametrize(
    ("mode", "schedules"),
    [
        ("mlock", False),
        ("mlock", True),
        ("encrypted", False),
        ("encrypted", True),
        ("none", False),
        ("none", True),
    ],
)
def test_memory_scan_for_the_raw_system_and_intermediate_keys(mode: str, schedules: bool) -> None:
    result = run_child(SCAN_CHILD, mode, "1" if schedules else "0")
    per_cipher = result["per_cipher"]
    assert per_cipher in (0, 2)  # 2 with AES-NI; 0 where the schedule is not the raw key first
    assert result["freed"] == 0  # OpenSSL cleanses a cipher context when it is freed
    keys = result["keys"]
    assert keys == ["_IK_alice_svc_prod", "_IK_bob_svc_prod", "_SK_svc_prod"]
    # With schedules cached the cipher is the key's only holder (the store keeps no copy of
    # a key it would never be asked for); without, the store alone holds it.
    readable, protected = (per_cipher, per_cipher) if schedules else AT_REST[mode]
    expected_running = {
        "readable": dict.fromkeys(keys, readable),
        "protected": dict.fromkeys(keys, protected),
    }
    zero = {"readable": dict.fromkeys(keys, 0), "protected": dict.fromkeys(keys, 0)}
    summary = {
        phase: {
            "running": (
                sorted(set(counts["running"]["readable"].values())),
                sorted(set(counts["running"]["protected"].values())),
            ),
            "closed": (
                sorted(set(counts["closed"]["readable"].values())),
                sorted(set(counts["closed"]["protected"].values())),
            ),
        }
        for phase, counts in result["phases"].items()
    }
    print(
        f"\nscan secure_memory={mode} cache_key_schedules={schedules} "
        f"(copies per live AESGCM: {per_cipher}; readable, with PROT_NONE): {summary}"
    )
    for phase in ("create", "load"):
        assert result["phases"][phase]["running"] == expected_running, phase
        assert result["phases"][phase]["closed"] == zero, phase


# -- 3. tiers ----------------------------------------------------------------------------------


class CacheEvents:
    """A hook plugin recording the secure-memory events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.other_caches: set[str] = set()

    @asherah.hooks.hookimpl
    def asherah_cache_event(self, cache: str, event: str, lookup: str, key_id: str) -> None:
        if cache == "secure-memory":
            self.events.append((event, lookup, key_id))
        else:
            self.other_caches.add(cache)

    def count(self, kind: str) -> int:
        return sum(1 for event, _, _ in self.events if event == kind)


def test_ten_partitions_through_a_hot_cache_of_two() -> None:
    plugin = CacheEvents()
    factory = SessionFactory(
        config(
            secure_memory="mlock",
            secure_memory_slab_slots=4,
            secure_memory_hot_cache_size=2,
            cache_key_schedules=False,
        ),
        plugins=[plugin],
    )
    partitions = [f"tenant-{i}" for i in range(10)]
    ik_ids = {f"_IK_{p}_svc_prod" for p in partitions}
    records: dict[str, str] = {}
    try:
        assert factory.key_store.mode == "mlock"
        assert factory.key_store.hot_cache_size == 2
        for partition in partitions:
            with factory.get_session(partition) as session:
                records[partition] = session.encrypt_bytes(partition.encode())
                assert session.decrypt_bytes(records[partition]) == partition.encode()
        first_round = len(plugin.events)
        # Second round: each IK was pushed out of the two hot slots long ago.
        for partition in partitions:
            with factory.get_session(partition) as session:
                assert session.decrypt_bytes(records[partition]) == partition.encode()
        stats = factory.key_store.stats()
    finally:
        factory.close()

    kinds = {event for event, _, _ in plugin.events}
    assert {"hit", "miss", "promotion", "eviction"} <= kinds
    assert all(lookup == "exact" for _, lookup, _ in plugin.events)
    assert {key_id for _, _, key_id in plugin.events} == ik_ids | {"_SK_svc_prod"}
    # Every IK was decrypted again from its enclave into a slot, and evicted something.
    second = plugin.events[first_round:]
    promoted = {key_id for event, _, key_id in second if event == "promotion"}
    assert promoted == ik_ids
    assert sum(1 for event, _, _ in second if event == "miss") == len(partitions)
    assert sum(1 for event, _, _ in second if event == "eviction") == len(partitions)
    # The hook saw exactly what the store counted.
    assert (stats.hits, stats.misses, stats.promotions, stats.evictions) == (
        plugin.count("hit"),
        plugin.count("miss"),
        plugin.count("promotion"),
        plugin.count("eviction"),
    )
    assert stats.keys == len(partitions) + 1  # ten IKs and the SK, each in its enclave
    assert stats.resident <= 2
    assert stats.overflows == 0
    # The coffer halves versus the coffer key are not reachable through the public store API;
    # tests/test_secure_memory_store.py checks them on the slab itself.


# -- 4. modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("schedules", [False, True])
@pytest.mark.parametrize("mode", ["encrypted", "none"])
def test_round_trip_in_mode(mode: str, schedules: bool) -> None:
    plugin = CacheEvents()
    sizes = (0, 1, 100, 20_000)
    with SessionFactory(
        config(secure_memory=mode, cache_key_schedules=schedules), plugins=[plugin]
    ) as factory:
        assert factory.key_store.mode == mode
        assert factory.key_store.stats().locked_bytes == 0
        with factory.get_session("alice") as alice, factory.get_session("bob") as bob:
            records = [alice.encrypt_bytes(b"a" * n) for n in sizes]
            assert [alice.decrypt_bytes(r) for r in records] == [b"a" * n for n in sizes]
            assert bob.decrypt_text(bob.encrypt_text("héllo")) == "héllo"
    kinds = {event for event, _, _ in plugin.events}
    if schedules:  # every use went through the cached cipher: the store was never opened
        assert kinds == set()
    elif mode == "encrypted":  # nothing stays decrypted: every use opens an enclave
        assert {"miss", "promotion", "eviction"} == kinds
    else:
        assert kinds == {"hit"}


MEMLOCK_CHILD = (
    ONE_PAGE_MEMLOCK
    + """
import json, logging

import asherah
from asherah import AsherahError, SessionFactory
from asherah.hazmat.memory import MemlockLimitError, locked_bytes, random_key

warnings = []

class Collect(logging.Handler):
    def emit(self, record):
        warnings.append((record.name, record.levelname, record.getMessage()))

logging.getLogger("asherah.factory").addHandler(Collect())

class Plugin:
    def __init__(self):
        self.events = []

    @asherah.hooks.hookimpl
    def asherah_cache_event(self, cache, event, lookup, key_id):
        if cache == "secure-memory":
            self.events.append(event)

# Keys kept only in the store (schedules not cached): the slab is built with the factory.
config = {"ServiceName": "svc", "ProductID": "prod", "Metastore": "memory", "KMS": "static",
          "StaticMasterKeyHex": "3f" * 32, "secure_memory": "mlock",
          "cache_key_schedules": False}
try:
    SessionFactory(config)
except AsherahError as exc:
    refused = {"type": type(exc).__name__, "memlock": isinstance(exc, MemlockLimitError),
               "message": str(exc)}
after_refusal = locked_bytes()

# Schedules cached (the default): no key enters the store, so its slab waits for a first put.
with SessionFactory({**config, "cache_key_schedules": True}) as factory:
    with factory.get_session("p") as session:
        default_works = session.decrypt_bytes(session.encrypt_bytes(b"data")) == b"data"
    default = {"works": default_works, "deferred": factory.key_store.deferred,
               "vmlck": locked_bytes(), "mode": factory.key_store.mode}
    try:
        factory.key_store.put(random_key())
    except MemlockLimitError:
        default["put_refused"] = True
    default["deferred_after_refusal"] = factory.key_store.deferred

plugin = Plugin()
with SessionFactory({**config, "secure_memory_allow_fallback": True},
                    plugins=[plugin]) as factory:
    store = factory.key_store
    with factory.get_session("p") as session:
        works = session.decrypt_bytes(session.encrypt_bytes(b"data")) == b"data"
    fallback = {"mode": store.mode, "requested": store.requested_mode,
                "reason": store.fallback_reason, "locked": store.stats().locked_bytes,
                "vmlck": locked_bytes(), "works": works}
lazy_plugin = Plugin()
with SessionFactory({**config, "cache_key_schedules": True,
                    "secure_memory_allow_fallback": True}, plugins=[lazy_plugin]) as factory:
    before = len(warnings)
    factory.key_store.put(random_key()).close()
    lazy_fallback = {"mode": factory.key_store.mode, "vmlck": locked_bytes(),
                     "warnings": warnings[before:], "events": lazy_plugin.events}
print(json.dumps({"refused": refused, "after_refusal": after_refusal, "fallback": fallback,
                  "warnings": warnings[:before], "events": plugin.events, "default": default,
                  "lazy_fallback": lazy_fallback}))
"""
)


def test_mlock_beyond_a_tiny_memlock_limit() -> None:
    result = run_child(MEMLOCK_CHILD)
    refused = result["refused"]
    assert refused["type"] == "MemlockLimitError"
    assert refused["memlock"] is True
    message = refused["message"]
    assert "RLIMIT_MEMLOCK is 4096 bytes (hard limit 4096 bytes)" in message
    assert "mlock of 12288 bytes failed" in message  # the default 256-slot slab: 3 pages
    assert "ulimit -l" in message
    assert "secure_memory = 'encrypted'" in message
    assert result["after_refusal"] == 0  # the refused factory locked and kept nothing

    fallback = result["fallback"]
    assert fallback["mode"] == "encrypted"
    assert fallback["requested"] == "mlock"
    assert "RLIMIT_MEMLOCK is 4096 bytes" in fallback["reason"]
    assert fallback["locked"] == 0
    assert fallback["vmlck"] == 0
    assert fallback["works"] is True
    factory_warnings = [w for w in result["warnings"] if w[1] == "WARNING"]
    assert len(factory_warnings) == 1
    name, _, text = factory_warnings[0]
    assert name == "asherah.factory"
    assert "secure_memory fell back to 'encrypted'" in text
    assert "RLIMIT_MEMLOCK is 4096 bytes" in text
    assert result["events"][0] == "fallback"

    # Schedules cached: the factory starts and works without locking anything; the slab (and
    # the limit's refusal) come with the first key put into the store.
    default = result["default"]
    assert default["works"] is True
    assert default["deferred"] is True
    assert default["vmlck"] == 0
    assert default["mode"] == "mlock"
    assert default["put_refused"] is True
    assert default["deferred_after_refusal"] is True
    lazy = result["lazy_fallback"]
    assert lazy["mode"] == "encrypted"
    assert lazy["vmlck"] == 0
    assert lazy["events"] == ["fallback"]
    assert len(lazy["warnings"]) == 1
    assert "secure_memory fell back to 'encrypted'" in lazy["warnings"][0][2]


def test_fallback_is_silent_when_mlock_works(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="asherah.factory"),
        SessionFactory(
            config(
                secure_memory="mlock",
                secure_memory_allow_fallback=True,
                cache_key_schedules=False,
            )
        ) as f,
    ):
        assert f.key_store.mode == "mlock"
        assert f.key_store.fallback_reason is None
        assert f.key_store.stats().locked_bytes > 0
    assert not [r for r in caplog.records if r.name == "asherah.factory"]


@pytest.mark.parametrize("schedules", [True, False])
def test_the_slab_is_built_with_the_factory_only_when_keys_go_into_it(schedules: bool) -> None:
    with SessionFactory(config(secure_memory="mlock", cache_key_schedules=schedules)) as f:
        with f.get_session("alice") as session:
            assert session.decrypt_bytes(session.encrypt_bytes(b"x")) == b"x"
        # Schedules cached: the keys live in their ciphers and the store stays unbuilt.
        assert f.key_store.deferred is schedules
        assert (f.key_store.stats().locked_bytes > 0) is not schedules
        assert f.key_store.stats().keys == (0 if schedules else 2)
    assert f.key_store.closed
