"""The encrypt path's block-read randomness: never repeats across threads or a fork, and
keeps no draw it has handed out."""

from __future__ import annotations

import os
import threading

import pytest

from asherah import _keys, _random_pool
from asherah.hazmat import aead


def _flat(draw: _random_pool.Draw) -> bytes:
    key, key_nonce, data_nonce = draw
    return bytes(key) + key_nonce + data_nonce


def test_draws_are_fresh_and_shaped_as_key_and_two_nonces() -> None:
    draws = [_random_pool.draw() for _ in range(3 * _random_pool.SLOTS + 5)]
    for key, key_nonce, data_nonce in draws:
        assert type(key) is bytearray  # wipeable by the caller
        assert len(key) == _random_pool.KEY_SIZE
        for nonce in (key_nonce, data_nonce):
            assert type(nonce) is bytes  # not secret: written into the record
            assert len(nonce) == _random_pool.NONCE_SIZE
    assert len({_flat(d) for d in draws}) == len(draws)
    pieces = [bytes(p) for d in draws for p in d]
    assert len(set(pieces)) == len(pieces)  # no key or nonce repeats inside or across draws


def test_the_pool_holds_only_draws_not_yet_handed_out() -> None:
    taken = _random_pool.draw()
    pending = list(_random_pool._pending)
    assert all(taken is not p and taken[0] is not p[0] for p in pending)
    assert len(pending) < _random_pool.SLOTS


def test_the_refill_block_is_zeroed_once_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks: list[bytearray] = []
    read = _keys.read_random_into

    def spy(buffer: bytearray) -> int | None:
        blocks.append(buffer)
        return read(buffer)

    monkeypatch.setattr(_keys, "read_random_into", spy)
    monkeypatch.setattr(_random_pool, "_pending", [])
    _random_pool._refill()
    assert len(blocks) == 1
    assert blocks[0] == bytes(len(blocks[0]))
    assert len(_random_pool._pending) == _random_pool.SLOTS
    assert all(any(key) for key, _, _ in _random_pool._pending)  # the cut keys are not zeroed


def test_threads_never_share_a_draw() -> None:
    results: list[list[bytes]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def work(index: int) -> None:
        start.wait()
        results[index] = [_flat(_random_pool.draw()) for _ in range(400)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [draw for result in results for draw in result]
    assert len(set(everything)) == 1600


def test_a_forked_child_never_repeats_the_parents_draws() -> None:
    _random_pool.draw()
    if not _random_pool._pending:  # that draw was the block's last
        _random_pool._refill()
    assert _random_pool._pending  # unread draws the child inherits
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.write(write_end, b"".join(_flat(_random_pool.draw()) for _ in range(4)))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(_flat(_random_pool.draw()) for _ in range(4))
    size = _random_pool.KEY_SIZE + 2 * _random_pool.NONCE_SIZE
    child_draws = {child[i : i + size] for i in range(0, len(child), size)}
    parent_draws = {parent[i : i + size] for i in range(0, len(parent), size)}
    assert len(child_draws) == 4
    assert not child_draws & parent_draws


def test_the_fork_hook_wipes_the_inherited_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_random_pool, "_pending", [])
    _random_pool._refill()
    inherited = [key for key, _, _ in _random_pool._pending]
    _random_pool._after_fork_in_child()  # what os.fork runs in the child
    assert not _random_pool._pending
    assert all(key == bytes(_random_pool.KEY_SIZE) for key in inherited)


def test_a_short_read_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_keys, "read_random_into", lambda buffer: 0)
    monkeypatch.setattr(_random_pool, "_pending", [])
    with pytest.raises(OSError, match="short read"):
        _random_pool.draw()


def test_a_new_key_and_its_wrapping_nonce_come_from_one_draw() -> None:
    pairs = [_random_pool.key_and_nonce() for _ in range(2 * _random_pool.SLOTS)]
    for key, nonce in pairs:
        assert type(key) is bytearray
        assert len(key) == _random_pool.KEY_SIZE
        assert len(nonce) == _random_pool.NONCE_SIZE
    assert len({bytes(k) + n for k, n in pairs}) == len(pairs)


def test_a_nonce_of_another_size_is_refused() -> None:
    cipher = aead.cipher(bytes(32))
    assert aead.open_with(cipher, aead.seal_with(cipher, b"x", b"\x01" * 12)) == b"x"
    with pytest.raises(aead.AeadError, match="nonce size 8"):
        aead.seal_with(cipher, b"x", b"\x01" * 8)
