"""The Host/Origin checks and the bearer token, on headers as uvicorn hands them over."""
from __future__ import annotations

import pytest

from workbench.serving.guard import Guard


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in values.items()]


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:8080", "localhost", "[::1]:8080",
                                  "LOCALHOST:9", "127.0.0.1"])
def test_local_hosts_are_allowed(host: str) -> None:
    assert Guard().check("/invocations", _headers(host=host)) is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                  "[::2]:8080", ""])
def test_other_hosts_are_403(host: str) -> None:
    refusal = Guard().check("/invocations", _headers(host=host))
    assert refusal is not None and (refusal.status, refusal.error_code) == (403, "FORBIDDEN_HOST")


def test_a_request_without_host_is_refused() -> None:
    assert Guard().check("/invocations", []).error_code == "FORBIDDEN_HOST"


def test_allowed_hosts_extend_the_defaults_and_star_allows_any() -> None:
    guard = Guard(["serving", " Model.Internal "])
    assert guard.check("/invocations", _headers(host="serving:8080")) is None
    assert guard.check("/invocations", _headers(host="model.internal")) is None
    assert guard.check("/invocations", _headers(host="localhost")) is None
    assert Guard(["*"]).check("/invocations", _headers(host="anything:1")) is None


@pytest.mark.parametrize("origin, allowed", [
    ("http://localhost:3000", True), ("https://127.0.0.1", True), ("http://[::1]:8888", True),
    ("http://evil.example", False), ("null", False), ("file://", False),
    ("http://localhost.evil.example", False), ("http://[", False),
])
def test_origin_must_be_an_allowed_host(origin: str, allowed: bool) -> None:
    refusal = Guard().check("/invocations", _headers(host="127.0.0.1:8080", origin=origin))
    assert (refusal is None) == allowed
    if not allowed:
        assert (refusal.status, refusal.error_code) == (403, "FORBIDDEN_ORIGIN")


def test_the_token_is_required_everywhere_but_health_and_ready() -> None:
    guard = Guard(token="t0ken")
    local = {"host": "127.0.0.1"}
    for path in ("/invocations", "/metadata", "/metrics", "/docs"):
        refusal = guard.check(path, _headers(**local))
        assert refusal is not None and (refusal.status, refusal.error_code) == (401, "UNAUTHORIZED")
        assert guard.check(path, _headers(**local, authorization="Bearer wrong")).status == 401
        assert guard.check(path, _headers(**local, authorization="t0ken")).status == 401
        assert guard.check(path, _headers(**local, authorization="Bearer t0ken")) is None
    for path in ("/health", "/ready"):
        assert guard.check(path, _headers(**local)) is None


def test_the_host_check_comes_before_the_token() -> None:
    refusal = Guard(token="t").check("/invocations", _headers(host="evil.example",
                                                                 authorization="Bearer t"))
    assert refusal.status == 403


def test_health_and_ready_answer_any_host_without_a_token() -> None:
    guard = Guard(token="t")
    for path in ("/health", "/ready"):
        assert guard.check(path, _headers(host="10.0.0.7:8080", origin="http://x.example")) is None
