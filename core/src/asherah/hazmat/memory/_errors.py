"""Errors of the secure-memory layer; all derive from ``AsherahError`` and never carry key bytes."""

from __future__ import annotations

from asherah._errors import AsherahError


class SecureMemoryError(AsherahError):
    """Protected memory could not be set up, used or released."""


class SecureMemoryUnavailableError(SecureMemoryError):
    """This platform has no protected memory (it needs x86-64 or aarch64 Linux)."""


class MemlockLimitError(SecureMemoryError):
    """``mlock`` was refused: the process would exceed ``RLIMIT_MEMLOCK``.

    The numbers are kept as attributes so a caller can log or decide without parsing text.
    """

    def __init__(
        self,
        message: str,
        *,
        requested: int,
        soft: int | None,
        hard: int | None,
        locked: int | None,
    ) -> None:
        super().__init__(message)
        self.requested = requested
        self.soft = soft
        self.hard = hard
        self.locked = locked


class CanaryError(SecureMemoryError):
    """A canary next to a protected buffer changed: something wrote outside its bounds."""
