"""The encrypt path's block-read randomness: never repeats across threads or a fork, and
keeps no draw it has handed out."""

from __future__ import annotations

import os
import threading

import pytest

from asherah import _keys, _random_pool


def test_draws_are_fresh_and_their_slots_are_wiped() -> None:
    draws = [_random_pool.draw() for _ in range(3 * _random_pool.SLOTS + 5)]
    assert all(len(d) == _random_pool.DRAW_SIZE for d in draws)
    assert len({bytes(d) for d in draws}) == len(draws)
    pool = _random_pool._local.pool
    if pool.position == len(pool.block):
        # Earlier tests' draws on this thread can leave the block exactly used up; one more
        # draw refills it, so there are unread slots to check.
        draws.append(_random_pool.draw())
    handed_out = pool.position
    assert handed_out > 0
    assert pool.block[:handed_out] == bytes(handed_out)  # used slots are zero
    assert pool.block[handed_out:] != bytes(len(pool.block) - handed_out)  # unread slots not


def test_threads_never_share_a_draw() -> None:
    results: list[list[bytes]] = [[] for _ in range(4)]

    def work(index: int) -> None:
        results[index] = [bytes(_random_pool.draw()) for _ in range(100)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [draw for result in results for draw in result]
    assert len(set(everything)) == 400


def test_a_forked_child_never_repeats_the_parents_draws() -> None:
    _random_pool.draw()  # the parent's pool now holds unread draws the child inherits
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.write(write_end, b"".join(bytes(_random_pool.draw()) for _ in range(4)))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(bytes(_random_pool.draw()) for _ in range(4))
    size = _random_pool.DRAW_SIZE
    child_draws = {child[i : i + size] for i in range(0, len(child), size)}
    parent_draws = {parent[i : i + size] for i in range(0, len(parent), size)}
    assert len(child_draws) == 4
    assert not child_draws & parent_draws


def test_a_short_read_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_keys, "read_random_into", lambda buffer: 0)
    pool = _random_pool._local.pool
    monkeypatch.setattr(pool, "position", len(pool.block))  # force a refill
    with pytest.raises(OSError, match="short read"):
        _random_pool.draw()
