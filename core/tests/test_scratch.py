"""The large-encrypt buffer pool: bounded, never shared between two calls at once."""

from __future__ import annotations

import os
import threading

import pytest

from asherah import SessionFactory, _scratch

from .test_hot_paths import CONFIG


@pytest.fixture(autouse=True)
def _empty_pool() -> None:
    _scratch._free.clear()


def test_a_buffer_is_reused_and_large_enough() -> None:
    first = _scratch.take(100)
    assert len(first) >= 100
    _scratch.give(first)
    assert _scratch.take(50) is first
    _scratch.give(first)
    bigger = _scratch.take(200)
    assert bigger is not first
    assert len(bigger) >= 200


def test_the_pool_is_bounded() -> None:
    taken = [_scratch.take(10) for _ in range(_scratch.KEEP + 3)]
    for buffer in taken:
        _scratch.give(buffer)
    assert len(_scratch._free) == _scratch.KEEP
    _scratch._free.clear()
    _scratch.give(bytearray(_scratch.MAX_KEPT + 1))
    assert _scratch._free == []


def test_a_taken_buffer_is_nobody_elses() -> None:
    one = _scratch.take(10)
    two = _scratch.take(10)
    assert one is not two


@pytest.mark.parametrize("size", [16 * 1024, 64 * 1024 + 1, _scratch.MAX_KEPT + 5])
def test_large_encrypts_from_many_threads_round_trip(size: int) -> None:
    with SessionFactory(CONFIG) as factory:
        errors: list[BaseException] = []

        def work(seed: int) -> None:
            try:
                with factory.get_session("a") as session:
                    for i in range(4):
                        payload = bytes([seed, i]) * (size // 2) + os.urandom(size % 2)
                        assert session.decrypt_bytes(session.encrypt_bytes(payload)) == payload
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    assert len(_scratch._free) <= _scratch.KEEP
