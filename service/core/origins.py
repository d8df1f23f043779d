"""Web origins (RFC 6454) as settings name them and browsers send them: `scheme://host[:port]`, nothing more.

CORS_ALLOW_ORIGINS lists the origins whose pages may call the API and open the change feed's WebSocket. Each entry
is compared with the `Origin` a browser sends, which is always in serialized form: lower-case scheme and host, the
port only when it is not the scheme's default, no path, no trailing slash. Entries are put in that form here, and
anything that is not an origin (a path, a query, user info, a wildcard) stops the start rather than match nothing
or, worse, more than meant.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# A host as a browser serializes it: a DNS name or IPv4 address (letters, digits, dots, hyphens), or an IPv6
# address (urlsplit's `hostname` drops its brackets).
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|[0-9a-f]*:[0-9a-f:.]*")


def parse_origins(text: str) -> tuple[str, ...]:
    """The comma-separated origins in `text` (blank entries skipped), serialized; ValueError names a bad one."""
    return tuple(dict.fromkeys(origin(entry.strip()) for entry in text.split(",") if entry.strip()))


def origin(entry: str) -> str:
    """`entry` as a serialized origin, or ValueError saying why it is not one."""
    if "*" in entry:
        raise ValueError(f"{entry!r}: wildcards are not allowed; name each origin")
    try:
        parts = urlsplit(entry)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not an origin: {exc}") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{entry!r}: an origin is http:// or https:// followed by a host and an optional port")
    if parts.path or parts.query or parts.fragment or "?" in entry or "#" in entry:
        raise ValueError(f"{entry!r}: an origin has no path, query or fragment (not even a trailing /)")
    if parts.username is not None or parts.password is not None or not _HOST.fullmatch(host):
        raise ValueError(f"{entry!r}: an origin is scheme://host[:port], without user info")
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def host_of(netloc: str, scheme: str) -> str:
    """A Host header's `host[:port]` in the form an origin of `scheme` would name it (lower case, no default
    port), to compare with an origin's."""
    host, port = netloc.lower(), DEFAULT_PORTS.get(scheme)
    return host.removesuffix(f":{port}") if port is not None else host
