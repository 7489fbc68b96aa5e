"""HashiCorp Vault / OpenBao Transit KMS for asherah (entry point ``asherah.kms: vault``,
also selected by ``vault-transit``).

System keys are wrapped by a named Transit key; the stored key is the UTF-8 bytes of Vault's
``vault:vN:...`` ciphertext, as the Rust reference and the other Asherah implementations
store it, so their records stay readable across implementations.
"""

from asherah_kms_vault._kms import VaultTransitKms
from asherah_kms_vault._options import VaultKmsOptions
from asherah_kms_vault._rewrap import key_version, rewrap_system_keys

__all__ = ["VaultKmsOptions", "VaultTransitKms", "key_version", "rewrap_system_keys"]
