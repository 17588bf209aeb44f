"""Which tunnel a public request is for: ``<id>.<TUNNEL_DOMAIN>`` or the first path segment.

A host that is not a tunnel subdomain falls back to path mode (``/<id>/rest``), where the
``/<id>`` prefix is stripped before forwarding. Tunnel ids are 12 chars of ``[a-z0-9]``, and only
the server makes them; named (reserved) subdomains are DNS labels of ``[a-z0-9-]`` (3-32 chars, no
leading/trailing dash) that never look like a tunnel id, so the two can never name the same tunnel.

Paths arrive percent-DECODED: an HTTP API hands Lambda ``rawPath`` decoded, already cut at a
decoded ``?`` (live captures: https://github.com/hotsock/voker/pull/8, summarised in
https://github.com/middleapi/standard-server/pull/93). :func:`request_target` builds the
request target the agent sends to the local service from it.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

# RFC 3986 pchar (unreserved, sub-delims, ":" and "@") plus "/": what may stand literally in a path.
_PATH_LITERAL = frozenset(string.ascii_letters + string.digits + "-._~" + "!$&'()*+,;=" + ":@/")

TUNNEL_ID_LENGTH = 12
_ALPHABET = string.ascii_lowercase + string.digits
TUNNEL_ID_RE = re.compile(r"[a-z0-9]{12}")
NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,30}[a-z0-9])")
_ROUTABLE_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

SUBDOMAIN = "subdomain"
PATH = "path"


@dataclass(frozen=True)
class Route:
    tunnel_id: str
    mode: str  # SUBDOMAIN or PATH
    path: str  # raw path to forward to the agent (prefix stripped in path mode), starts with "/"
    prefix: str  # "/<id>" in path mode, "" in subdomain mode


def new_tunnel_id() -> str:
    """12 uniformly random characters of [a-z0-9] from the OS CSPRNG."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(TUNNEL_ID_LENGTH))


def is_tunnel_id(value: str) -> bool:
    return TUNNEL_ID_RE.fullmatch(value) is not None


def is_valid_name(value: str) -> bool:
    """A requestable named subdomain: a DNS label that is not shaped like a generated tunnel id."""
    return NAME_RE.fullmatch(value) is not None and not is_tunnel_id(value)


def is_routable(value: str) -> bool:
    return _ROUTABLE_RE.fullmatch(value) is not None


def _host_label(host: str, tunnel_domain: str) -> str | None:
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return None  # IPv6 literal
    host = host.rsplit(":", 1)[0] if ":" in host else host
    suffix = "." + tunnel_domain
    if not tunnel_domain or not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    if "." in label or not is_routable(label):
        return None
    return label


def resolve(host: str, raw_path: str, tunnel_domain: str) -> Route | None:
    """The route for a request, or None when no tunnel id can be found (404)."""
    path = raw_path if raw_path.startswith("/") else "/" + raw_path
    label = _host_label(host, tunnel_domain)
    if label is not None:
        return Route(tunnel_id=label, mode=SUBDOMAIN, path=path, prefix="")
    segment, sep, rest = path[1:].partition("/")
    if not is_routable(segment):
        return None
    return Route(tunnel_id=segment, mode=PATH, path="/" + rest if sep else "/", prefix="/" + segment)


def _percent(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))  # UnicodeEncodeError (a ValueError) on lone surrogates


def request_target(path: str, raw_query: str) -> str:
    """The origin-form request target for the local service, from a DECODED path and the raw query.

    Every character that cannot stand literally in a path is percent-encoded (UTF-8), ``%``, ``?``
    and ``#`` included, so the target decodes back to exactly the path API Gateway delivered:
    ``/a b#c`` -> ``/a%20b%23c``, ``/100%`` -> ``/100%25``, ``/λ`` -> ``/%CE%BB``. The query was
    not decoded by API Gateway: it is kept byte for byte, non-ASCII percent-encoded as ttf always
    did. Raises ValueError when no target can be built without changing what the caller sent:
    the path is not absolute or has characters without a UTF-8 form, or the query holds a space,
    a control character or ``#`` (no valid request carries one; sent on, it would break the
    request line or be cut as a fragment).
    """
    if not path.startswith("/"):
        raise ValueError("path must start with '/'")
    if any(ch <= " " or ch in "#\x7f" for ch in raw_query):
        raise ValueError("query holds a space, a control character or '#'")
    target = "".join(ch if ch in _PATH_LITERAL else _percent(ch) for ch in path)
    if not raw_query:
        return target
    query = raw_query if raw_query.isascii() else "".join(ch if ch.isascii() else _percent(ch) for ch in raw_query)
    return f"{target}?{query}"


_HEX = frozenset(string.hexdigits)


def encoded_request_target(raw_path: str, raw_query: str) -> str:
    """The request target from a path still percent-ENCODED as the caller sent it (function URL
    events): kept byte for byte, so ``/a%2Fb``, ``/%2525`` and ``/100%25done`` reach the local
    service as sent. Only what cannot stand in a request line is encoded (non-ASCII as UTF-8).
    Raises ValueError like :func:`request_target`, and on a ``%`` not followed by two hex digits."""
    if not raw_path.startswith("/"):
        raise ValueError("path must start with '/'")
    for at, ch in enumerate(raw_path):
        if ch == "%" and not (len(raw_path) >= at + 3 and raw_path[at + 1] in _HEX and raw_path[at + 2] in _HEX):
            raise ValueError("path holds a '%' without two hex digits")
    path = "".join(ch if ch in _PATH_LITERAL or ch == "%" else _percent(ch) for ch in raw_path)
    return path + request_target("/", raw_query)[1:]  # the query: the same checks and encoding
