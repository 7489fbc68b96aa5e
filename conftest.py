"""Repository-wide pytest hooks."""

from __future__ import annotations

import pytest

from testsupport.hardening_probe import HARDENING_RESULT, run_probe


def pytest_sessionstart(session: pytest.Session) -> None:
    # Before any test builds a factory (which hardens this process for good).
    session.config.stash[HARDENING_RESULT] = run_probe()
