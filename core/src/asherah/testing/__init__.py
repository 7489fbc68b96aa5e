"""The contract kit for driver authors (install with ``pip install 'asherah[testing]'``).

Subclass :class:`MetastoreContract` or :class:`KmsContract` in a ``Test*`` class and provide
the fixtures their docstrings name; pytest then runs every contract test against your driver.
The optional pytest plugin ``asherah.testing.plugin`` adds ready fixtures (opt in with
``pytest_plugins = ["asherah.testing.plugin"]``). Nothing here is imported by the library.
"""

from asherah.testing._counting import CountingKms, CountingMetastore
from asherah.testing._kms_contract import KmsContract, KmsFailureContract
from asherah.testing._metastore_contract import MetastoreContract, MetastoreFailureContract

__all__ = [
    "CountingKms",
    "CountingMetastore",
    "KmsContract",
    "KmsFailureContract",
    "MetastoreContract",
    "MetastoreFailureContract",
]
