"""Rotation policy: when keys expire, how often the latest key is re-checked, key timestamps."""

from __future__ import annotations

from dataclasses import dataclass

from asherah._config import Config


@dataclass(frozen=True, slots=True)
class CryptoPolicy:
    expire_after_s: int
    check_interval_s: int
    create_date_precision_s: int
    deny_revoked_on_decrypt: bool = False

    @classmethod
    def from_config(cls, config: Config) -> CryptoPolicy:
        return cls(
            expire_after_s=config.expire_after_s,
            check_interval_s=config.check_interval_s,
            create_date_precision_s=config.create_date_precision_s,
            deny_revoked_on_decrypt=config.deny_revoked_on_decrypt,
        )

    def is_expired(self, created: int, now: int) -> bool:
        """The reference's rule: expired once ``now - created >= expire_after``."""
        return now - created >= self.expire_after_s

    def new_key_created(self, now: int, replacing: int | None) -> int:
        """``Created`` for a new SK/IK: ``now`` truncated to the precision, and strictly newer
        than the key it replaces, so a revoked key is replaced even inside its own minute."""
        precision = self.create_date_precision_s
        created = now - now % precision
        if replacing is not None and created <= replacing:
            created = replacing + 1
        return created
