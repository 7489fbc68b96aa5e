"""The new-partition paths: how a new key is held, and what a cold load leaves behind."""

from __future__ import annotations

import pytest

from asherah._keys import CryptoKey
from asherah.hazmat.aead import AeadError
from asherah.hazmat.memory import KeyStore

MATERIAL = bytes(range(32))


@pytest.mark.parametrize("mode", ["mlock", "encrypted", "none"])
def test_a_key_with_a_cached_schedule_keeps_no_copy_in_the_store(mode: str) -> None:
    with KeyStore(mode) as store:
        material = bytearray(MATERIAL)
        key = CryptoKey(store, material, 1, cache_schedule=True)
        assert material == bytearray(32)  # moved into the cipher, the buffer zeroed
        assert store.stats().keys == 0
        assert key.prepared is not None
        sealed = key.seal(b"k" * 32)

        stored = CryptoKey(store, bytearray(MATERIAL), 1, cache_schedule=False)
        assert stored.prepared is None
        assert store.stats().keys == 1
        # The same material either way: each opens what the other sealed.
        assert stored.open_key(sealed) == bytearray(b"k" * 32)
        assert key.open_key(stored.seal(b"j" * 32)) == bytearray(b"j" * 32)

        key.wipe()
        stored.wipe()
        assert store.stats().keys == 0
        for wiped in (key, stored):
            with pytest.raises(AeadError, match="wiped"):
                wiped.seal(b"x")


def test_a_wrong_sized_key_is_refused_and_wiped_either_way() -> None:
    with KeyStore("none") as store:
        for schedule in (True, False):
            material = bytearray(b"\x07" * 16)
            with pytest.raises(AeadError, match="invalid key size"):
                CryptoKey(store, material, 1, cache_schedule=schedule)
            assert material == bytearray(16)
        assert store.stats().keys == 0
