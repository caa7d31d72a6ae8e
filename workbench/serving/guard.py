"""Who may talk to the server: the ``Host`` and ``Origin`` checks and the bearer token.

A server on 127.0.0.1 is still reachable from any web page open in the user's browser: the
page can POST to it directly, or by DNS rebinding a name of its own to 127.0.0.1. Either
way the request carries a ``Host`` (rebinding) or an ``Origin`` (a cross-site POST) that is
not the server's own, so both are checked against the allowed hosts, and the prediction
log, which drift checks read, takes no writes from other sites. The token is for servers
that others can reach (``--host 0.0.0.0``, a model image on a shared network).

``/health`` and ``/ready`` stay open: orchestrators probe them with whatever ``Host`` they
like and no token, and they say nothing about the model's inputs.
"""
from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
OPEN_PATHS = frozenset({"/health", "/ready"})


@dataclass(frozen=True)
class Refusal:
    status: int
    error_code: str
    message: str


class Guard:
    """Checks each request's headers before anything else reads it.

    Args:
        allowed_hosts: host names (no port) accepted in ``Host`` and ``Origin``, beside the
            defaults; ``*`` accepts any.
        token: when set, every path but the open ones needs ``Authorization: Bearer <token>``.
    """

    def __init__(self, allowed_hosts: Iterable[str] = (), token: str = "") -> None:
        hosts = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts | set(DEFAULT_HOSTS))
        self._token = f"Bearer {token}".encode() if token else b""

    def check(self, path: str, headers: Iterable[tuple[bytes, bytes]]) -> Refusal | None:
        """None when the request may go on, else what to answer."""
        if path in OPEN_PATHS:
            return None
        host = origin = authorization = None
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"authorization":
                authorization = value
        if not self.any_host:
            if host is None or not self._allowed(_host_name(host.decode("latin-1"))):
                return Refusal(403, "FORBIDDEN_HOST",
                               "the Host header names a host this server does not answer for; "
                               "start it with --allowed-hosts NAME to allow it")
            if origin is not None and not self._allowed_origin(origin.decode("latin-1")):
                return Refusal(403, "FORBIDDEN_ORIGIN",
                               "requests from web pages of other sites are refused; start the "
                               "server with --allowed-hosts NAME to allow that site")
        if self._token and not (
                authorization is not None and hmac.compare_digest(authorization, self._token)):
            return Refusal(401, "UNAUTHORIZED",
                           "this server needs 'Authorization: Bearer <token>' (the token it "
                           "was started with, --token)")
        return None

    def _allowed(self, name: str) -> bool:
        return name.lower() in self.hosts

    def _allowed_origin(self, origin: str) -> bool:
        try:
            parts = urlsplit(origin)
            name = parts.hostname
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and name is not None and self._allowed(name)


def _host_name(host: str) -> str:
    """``Host`` without its port: ``[::1]:8080`` -> ``::1``, ``localhost:8080`` -> ``localhost``."""
    host = host.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
