"""A key that outlives its factory's store is dropped quietly: the store already wiped it."""

from __future__ import annotations

from testsupport.child import run_python

CHILD = """
import asherah
config = {"ServiceName": "s", "ProductID": "p", "Metastore": "memory", "KMS": "static",
          "StaticMasterKeyHex": "22" * 32}
factory = asherah.SessionFactory(config)
session = factory.get_session("p")
keys = [factory._keys.latest_intermediate(session._ids)]
session.encrypt_bytes(b"x")
factory.close()
del keys
second = asherah.SessionFactory(config)
for p in ("a", "b", "c"):
    second.get_session(p).encrypt_bytes(b"y")
print("done")
"""


def test_keys_outliving_the_store_and_open_factories_at_exit_are_silent() -> None:
    child = run_python(CHILD)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "done"
    assert "Exception ignored" not in child.stderr
    assert "SecureMemoryError" not in child.stderr
