"""Which tunnel a public request is for: ``<id>.<TUNNEL_DOMAIN>`` or the first path segment.

A host that is not a tunnel subdomain falls back to path mode (``/<id>/rest``), where the
``/<id>`` prefix is stripped before forwarding. Tunnel ids are 12 chars of ``[a-z0-9]``, and only
the server makes them; named (reserved) subdomains are DNS labels of ``[a-z0-9-]`` (3-32 chars, no
leading/trailing dash) that never look like a tunnel id, so the two can never name the same tunnel.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

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
