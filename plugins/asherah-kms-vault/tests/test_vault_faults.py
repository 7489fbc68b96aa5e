"""Failures: a sealed Vault, a stopped or frozen server, a proxy answering 502 with HTML."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from asherah import InMemoryMetastore, KmsError, SessionFactory
from asherah_kms_vault import VaultTransitKms
from testsupport.openbao import OpenBao

SESSION_CONFIG = {"service_name": "svc", "product_id": "prod"}


def _driver(addr: str, token: str, **options: Any) -> VaultTransitKms:
    return VaultTransitKms.from_config(
        {"addr": addr, "transit_key": "test-key", "token": token, **options}
    )


def test_sealed_vault_is_a_503_kms_error_until_unsealed(own_bao: OpenBao) -> None:
    kms = _driver(own_bao.addr, own_bao.root_token, retries=0)
    try:
        blob = kms.encrypt_key(b"s" * 32)
        own_bao.seal()
        for action in (lambda: kms.encrypt_key(b"s" * 32), lambda: kms.decrypt_key(blob)):
            with pytest.raises(KmsError) as info:
                action()
            assert "HTTP 503" in str(info.value)
            assert "Vault is sealed" in str(info.value)
        own_bao.unseal()
        assert kms.decrypt_key(blob) == b"s" * 32
    finally:
        kms.close()


def test_stopped_server_fails_within_the_timeout_and_warm_partitions_keep_working(
    own_bao: OpenBao,
) -> None:
    kms = _driver(own_bao.addr, own_bao.root_token, timeout=2, retries=1)
    metastore = InMemoryMetastore()
    factory = SessionFactory(SESSION_CONFIG, metastore=metastore, kms=kms)
    try:
        warm = factory.get_session("warm")
        record = warm.encrypt_bytes(b"cached")
        own_bao.stop()
        # Keys already unwrapped stay in the cache: no call reaches Vault.
        assert warm.decrypt_bytes(record) == b"cached"
        assert warm.decrypt_bytes(warm.encrypt_bytes(b"again")) == b"again"
        started = time.monotonic()
        with pytest.raises(KmsError, match=r"encrypt .*cannot connect: Connection refused"):
            kms.encrypt_key(os.urandom(32))
        assert time.monotonic() - started < 2
        # A factory with a cold cache needs Vault to unwrap the system key, and says so.
        cold = SessionFactory(SESSION_CONFIG, metastore=metastore, kms=kms)
        try:
            with pytest.raises(KmsError, match=r"Vault Transit decrypt .*cannot connect"):
                cold.get_session("warm").decrypt_bytes(record)
        finally:
            cold.close()
    finally:
        factory.close()


def test_frozen_server_fails_after_the_timeout(own_bao: OpenBao) -> None:
    kms = _driver(own_bao.addr, own_bao.root_token, timeout=0.5, retries=1)
    try:
        blob = kms.encrypt_key(b"f" * 32)
        own_bao.pause()
        started = time.monotonic()
        with pytest.raises(KmsError, match=r"decrypt .*no answer within the 0.5 s timeout"):
            kms.decrypt_key(blob)
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 3  # two attempts of 0.5 s, plus a short back-off
        own_bao.resume()
        assert kms.decrypt_key(blob) == b"f" * 32
    finally:
        own_bao.resume()
        kms.close()


def test_html_502_from_a_proxy_names_status_and_a_short_excerpt(bad_gateway: Any) -> None:
    token = "s.proxy-echoed-token-value"
    kms = _driver(bad_gateway.addr, token, retries=2)
    try:
        with pytest.raises(KmsError) as info:
            kms.encrypt_key(os.urandom(32))
    finally:
        kms.close()
    text = str(info.value)
    assert text.startswith("Vault Transit encrypt with key 'test-key'")
    assert "HTTP 502" in text
    assert "502 Bad Gateway" in text
    assert "nginx" in text
    assert len(text) < 400  # an excerpt, not the page
    assert token not in text
    assert token not in repr(info.value.__cause__)
    # The 502 was retried: the first attempt and two retries reached the proxy.
    assert bad_gateway.paths.count("/v1/transit/encrypt/test-key") == 3


def test_vault_json_errors_are_quoted(own_bao: OpenBao) -> None:
    kms = _driver(own_bao.addr, own_bao.root_token, transit_mount="missing")
    try:
        with pytest.raises(KmsError) as info:
            kms.decrypt_key(b"vault:v1:AAAA")
    finally:
        kms.close()
    text = str(info.value)
    assert "HTTP 404" in text or "HTTP 403" in text
    assert "mount 'missing'" in text
