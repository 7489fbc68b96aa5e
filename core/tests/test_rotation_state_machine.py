"""A state machine over random encrypt / revoke IK / revoke SK / advance-clock / restart traces:
every record ever returned still decrypts, and no encrypt uses a key it should have rotated."""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from asherah import InMemoryMetastore, SessionFactory

from .conftest import FakeClock, static_config

EXPIRE = 600
CHECK = 60
PARTITIONS = ["a", "b", "a_b"]
SK = "_SK_svc_prod"
CONFIG = static_config(ExpireAfter=EXPIRE, CheckInterval=CHECK)


class RotationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.memory = InMemoryMetastore()
        self.factory = SessionFactory(CONFIG, metastore=self.memory, clock=self.clock)
        self.records: list[tuple[str, str, bytes]] = []
        self.revoked_at: dict[tuple[str, int], float] = {}
        self.seen_intermediate: set[tuple[str, int]] = set()

    def _revoke_latest(self, key_id: str) -> None:
        record = self.memory.load_latest(key_id)
        if record is not None and not record.revoked:
            self.memory.replace(key_id, record.created, record.with_revoked(True))
            self.revoked_at[(key_id, record.created)] = self.clock()

    def _may_still_use(self, key: tuple[str, int], now: float) -> bool:
        """A revoked key may serve only until the cached copy is re-checked."""
        revoked = self.revoked_at.get(key)
        return revoked is None or now - revoked < CHECK

    @rule(partition=st.sampled_from(PARTITIONS), data=st.binary(max_size=24))
    def encrypt(self, partition: str, data: bytes) -> None:
        record = self.factory.get_session(partition).encrypt_bytes(data)
        now = self.clock()
        meta = json.loads(record)["Key"]["ParentKeyMeta"]
        ik = (meta["KeyId"], meta["Created"])
        assert ik[0] == f"_IK_{partition}_svc_prod"
        assert now - ik[1] < EXPIRE, "encrypted under an expired intermediate key"
        assert self._may_still_use(ik, now), "revoked intermediate key used after re-check"
        if ik not in self.seen_intermediate:  # a new IK: its SK must have been usable
            self.seen_intermediate.add(ik)
            row = self.memory.load(*ik)
            assert row is not None
            assert row.parent_key_meta is not None
            sk = (row.parent_key_meta.key_id, row.parent_key_meta.created)
            assert sk[0] == SK
            assert now - sk[1] < EXPIRE, "new intermediate key under an expired system key"
            assert self._may_still_use(sk, now), "new intermediate key under a revoked SK"
        self.records.append((partition, record, data))

    @rule(partition=st.sampled_from(PARTITIONS))
    def revoke_intermediate(self, partition: str) -> None:
        self._revoke_latest(f"_IK_{partition}_svc_prod")

    @rule()
    def revoke_system(self) -> None:
        self._revoke_latest(SK)

    @rule(seconds=st.sampled_from([0, 1, 2, 30, 59, 60, 61, 120, 599, 600, 601, 3600]))
    def advance(self, seconds: int) -> None:
        self.clock.now += seconds

    @precondition(lambda self: bool(self.records))
    @rule()
    def restart(self) -> None:
        self.factory.close()
        self.factory = SessionFactory(CONFIG, metastore=self.memory, clock=self.clock)

    @invariant()
    def every_record_decrypts_and_nothing_is_written(self) -> None:
        rows = self.memory.rows()
        for partition, record, data in self.records:
            assert self.factory.get_session(partition).decrypt_bytes(record) == data
        assert self.memory.rows() == rows

    @invariant()
    def key_rows_never_share_a_created(self) -> None:
        ids = [(k, c) for k, c, _ in self.memory.rows()]
        assert len(ids) == len(set(ids))

    def teardown(self) -> None:
        self.factory.close()
        # A cold factory, much later, still decrypts everything.
        self.clock.now += 365 * 24 * 3600
        with SessionFactory(CONFIG, metastore=self.memory, clock=self.clock) as cold:
            for partition, record, data in self.records:
                assert cold.get_session(partition).decrypt_bytes(record) == data


RotationMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestRotationStateMachine = RotationMachine.TestCase
