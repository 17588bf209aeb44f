"""The edge policy of one tunnel: basic auth, IP rules, webhook verification, header rules.

(Over 300 lines: the policy's wire format, its limits and every check forward runs on it in one
stdlib-only module, which the agent imports as well to refuse a bad policy before connecting.)

Stdlib only: the agent (ttf) builds and validates the policy with this module at start, so a
broken policy is refused there with one readable line; connect validates it again (400) and
forward enforces it. Nothing half-applies: ``parse`` accepts the whole document or raises.

Wire: the agent sends ``X-Tunnel-Policy: <base64url(JSON)>`` (no padding) in the ``$connect``
request (a header only, never the query string, which access logs keep). connect stores the
canonical compact JSON on the connection row (``policy``); forward parses it once per warm
instance (``forward.parsed_policy``, keyed by the raw string). Document, version 1 (every key but ``v`` optional):

    {"v": 1,
     "auth":  [{"u": USER, "s": b64 salt(16), "h": b64 scrypt(32), "n": N, "r": 8, "p": 1}],
     "allow": [CIDR, ...], "deny": [CIDR, ...],
     "hooks": [{"p": PROVIDER, "k": SECRET, ("h": HEADER, "e": hex|base64, "x": PREFIX)}],
     "qadd": [[NAME, VALUE]], "qrm": [NAME], "sadd": [[NAME, VALUE]], "srm": [NAME], "fa": true}

``fa`` (``ttf --basic-auth-forward``): the local service still gets the caller's
``Authorization`` header that basic auth consumed. Without it that header is dropped and the
local service gets ``X-Forwarded-User: <user>`` instead (a caller's own ``X-Forwarded-User`` is
always dropped: it is one of the edge's proxy headers).

Passwords never leave the agent: it hashes them with ``hashlib.scrypt`` (N=2**14, r=8, p=1,
32-byte key, 16-byte random salt; N may be 2**14..2**16 so a stronger setting stays valid).
Webhook secrets travel in plain text (over TLS, in a header) because forward must compute HMACs
with them; they are never logged, and on the connection row they are KMS ciphertext
(``httptunnel.sealed``: connect stores the policy without ``hooks`` plus ``sealedHooks``).

Evaluation in forward, in this order; the first failure answers:
1. IP rules on ``requestContext.http.sourceIp``: a deny match refuses (deny wins); with an
   allow list, an address in none of it refuses. 403 ``ip_denied``.
2. Basic auth (when users exist): 401 ``basic_auth_required`` + ``WWW-Authenticate`` whose realm
   names the tunnel (``http-tunnel <id>``: a browser keeps one tunnel's credentials from the
   others under a shared path-mode origin). An unknown user costs the same scrypt as a known
   one. Failed attempts are budgeted per (tunnel, source IP) in each warm forward instance
   (``gate``): past the budget, 429 ``basic_auth_throttled`` with ``Retry-After``.
3. Webhooks (when verifiers exist): the request must verify against at least one. 403
   ``webhook_signature_invalid``.
Then the request header rules (remove, then add = set) apply to what the agent receives, and
the response header rules to what the caller receives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

from .ttlmap import TTLMap
from .webhooks import Verifier, WebhookError, from_fields, parse_spec, to_fields

HEADER = "X-Tunnel-Policy"
VERSION = 1
POLICY_MAX = 4096  # bytes of canonical JSON (stored on the row, read per request)
HEADER_MAX = 4 * POLICY_MAX // 3 + 4  # its base64url form in the $connect header
MAX_USERS = 10
MAX_CIDRS = 50  # each of allow / deny
MAX_HOOKS = 10
MAX_HEADER_RULES = 20  # each of the four lists
USER_MAX = 64
PASSWORD_MAX = 128
VALUE_MAX = 512
REALM = "http-tunnel"
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
SCRYPT_MAXMEM = 128 * 1024 * 1024

IP_DENIED = "ip_denied"
AUTH_REQUIRED = "basic_auth_required"
AUTH_THROTTLED = "basic_auth_throttled"
WEBHOOK_INVALID = "webhook_signature_invalid"
DENIAL_STATUS = {IP_DENIED: 403, AUTH_REQUIRED: 401, AUTH_THROTTLED: 429, WEBHOOK_INVALID: 403}  # forward answers these
# Headers a rule may not touch: framing and routing are the tunnel's, not the policy's.
PROTECTED = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer", "trailers", "proxy-connection", "proxy-authenticate", "proxy-authorization", "x-tunnel-error",
})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_VALUE = re.compile(r"[\x20-\x7e\t]*")

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class PolicyError(ValueError):
    """A policy that cannot be used: one readable line."""


@dataclass(frozen=True)
class User:
    name: str
    salt: bytes
    key: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def matches(self, password: bytes) -> bool:
        derived = hashlib.scrypt(password, salt=self.salt, n=self.n, r=self.r, p=self.p,
                                 dklen=SCRYPT_DKLEN, maxmem=SCRYPT_MAXMEM)
        return hmac.compare_digest(derived, self.key)


@dataclass(frozen=True)
class Policy:
    users: tuple[User, ...] = ()
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    hooks: tuple[Verifier, ...] = ()
    request_add: tuple[tuple[str, str], ...] = ()
    request_remove: tuple[str, ...] = ()
    response_add: tuple[tuple[str, str], ...] = ()
    response_remove: tuple[str, ...] = ()
    forward_authorization: bool = False  # the local service also gets the Authorization basic auth consumed
    # the tunnel's own lower limits (``lim``: requests/s, burst, in flight; 0 = the operator's): ``fairness``
    limits: tuple[float, float, int] = (0.0, 0.0, 0)

    def __bool__(self) -> bool:
        return any((self.users, self.allow, self.deny, self.hooks, self.request_add, self.request_remove,
                    self.response_add, self.response_remove, any(self.limits)))

    def to_json(self) -> str:
        doc: dict[str, Any] = {"v": VERSION}
        if self.users:
            doc["auth"] = [{"u": u.name, "s": _b64(u.salt), "h": _b64(u.key), "n": u.n, "r": u.r, "p": u.p}
                           for u in self.users]
        if self.allow:
            doc["allow"] = [str(n) for n in self.allow]
        if self.deny:
            doc["deny"] = [str(n) for n in self.deny]
        if self.hooks:
            doc["hooks"] = [to_fields(v) for v in self.hooks]
        for key, rules in (("qadd", self.request_add), ("sadd", self.response_add)):
            if rules:
                doc[key] = [list(rule) for rule in rules]
        for key, names in (("qrm", self.request_remove), ("srm", self.response_remove)):
            if names:
                doc[key] = list(names)
        if self.forward_authorization:
            doc["fa"] = True
        if any(self.limits):
            doc["lim"] = {k: v for k, v in zip(("rps", "burst", "inflight"), self.limits, strict=True) if v}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)

    def describe(self) -> list[str]:
        """One line per rule, secrets masked (ttf prints these at start)."""
        lines = [f"basic auth: user {u.name!r} (password: scrypt hash)" for u in self.users]
        if self.users:
            lines.append("basic auth: the local service gets " + (
                "the caller's Authorization header" if self.forward_authorization else "X-Forwarded-User"))
        lines += [f"allow ip: {n}" for n in self.allow] + [f"deny ip: {n}" for n in self.deny]
        lines += [f"verify webhook: {v.masked()}" for v in self.hooks]
        lines += [f"request header add: {k}: {v}" for k, v in self.request_add]
        lines += [f"request header remove: {k}" for k in self.request_remove]
        lines += [f"response header add: {k}: {v}" for k, v in self.response_add]
        lines += [f"response header remove: {k}" for k in self.response_remove]
        return lines


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise PolicyError(f"policy: {what} must be {size} bytes of base64")
    return raw


# --------------------------------------------------------------------------- building (ttf)

def hash_password(user: str, password: str, salt: bytes | None = None, n: int = SCRYPT_N) -> User:
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                         dklen=SCRYPT_DKLEN, maxmem=SCRYPT_MAXMEM)
    return User(user, salt, key, n)


def split_basic_auth(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise PolicyError("basic auth must be USER:PASS with both parts non-empty")
    _check_user(user)
    if len(password) > PASSWORD_MAX or not password.isprintable():
        raise PolicyError(f"basic auth: the password must be 1-{PASSWORD_MAX} printable characters")
    return user, password


def _check_user(user: str) -> str:
    if not 0 < len(user) <= USER_MAX or ":" in user or not user.isprintable():
        raise PolicyError(f"basic auth: the user name must be 1-{USER_MAX} printable characters without ':'")
    return user


_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_cidr(text: str) -> Network:
    """An address or CIDR (host bits set are refused: '10.0.0.1/8' is probably a mistake).

    An IPv4-mapped IPv6 network (``::ffff:1.2.3.4/128``, anything inside ``::ffff:0:0/96``) is
    the IPv4 network it maps (``1.2.3.4/32``): callers reach API Gateway over IPv4 with a plain
    IPv4 source address, which an IPv6 rule would never match (a deny rule would fail open)."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise PolicyError(f"{text[:60]!r} is not an IP address or CIDR ({exc})") from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_V4_MAPPED):
        return ipaddress.IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
    return net


def header_name(text: str) -> str:
    name = text.strip().lower()
    if not _TOKEN.fullmatch(name):
        raise PolicyError(f"{text[:60]!r} is not a header name")
    if name in PROTECTED:
        raise PolicyError(f"header {name!r} belongs to the tunnel and cannot be changed by a rule")
    return name


def header_rule(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        raise PolicyError(f"{text[:60]!r} is not NAME:VALUE")
    value = value.strip()
    if len(value) > VALUE_MAX or not _VALUE.fullmatch(value):
        raise PolicyError(f"header {name.strip()[:60]!r}: the value must be at most {VALUE_MAX} visible ASCII characters")
    return header_name(name), value


def webhook(text: str) -> Verifier:
    try:
        return parse_spec(text)
    except WebhookError as exc:
        raise PolicyError(str(exc)) from None


def build(basic_auth: Iterable[str] = (), allow: Iterable[str] = (), deny: Iterable[str] = (),
          hooks: Iterable[str] = (), request_add: Iterable[str] = (), request_remove: Iterable[str] = (),
          response_add: Iterable[str] = (), response_remove: Iterable[str] = (),
          forward_authorization: bool = False) -> Policy:
    """From the agent's option strings. Raises PolicyError; the result fits the size cap."""
    pairs = [split_basic_auth(item) for item in basic_auth]
    built = Policy(
        users=tuple(hash_password(u, p) for u, p in _checked_count(pairs, MAX_USERS, "--basic-auth")),
        allow=tuple(parse_cidr(c) for c in _checked_count(list(allow), MAX_CIDRS, "--allow-ip")),
        deny=tuple(parse_cidr(c) for c in _checked_count(list(deny), MAX_CIDRS, "--deny-ip")),
        hooks=tuple(webhook(h) for h in _checked_count(list(hooks), MAX_HOOKS, "--verify-webhook")),
        request_add=tuple(header_rule(r) for r in _checked_count(list(request_add), MAX_HEADER_RULES,
                                                                 "--request-header-add")),
        request_remove=tuple(header_name(r) for r in _checked_count(list(request_remove), MAX_HEADER_RULES,
                                                                    "--request-header-remove")),
        response_add=tuple(header_rule(r) for r in _checked_count(list(response_add), MAX_HEADER_RULES,
                                                                  "--response-header-add")),
        response_remove=tuple(header_name(r) for r in _checked_count(list(response_remove), MAX_HEADER_RULES,
                                                                     "--response-header-remove")),
        forward_authorization=forward_authorization,
    )
    return parse(built.to_json())  # the same checks connect makes (duplicates, size)


def _checked_count(items: list[Any], limit: int, what: str) -> list[Any]:
    if len(items) > limit:
        raise PolicyError(f"{what}: at most {limit} entries (got {len(items)})")
    return items


# --------------------------------------------------------------------------- the document

def parse(text: str) -> Policy:
    """The stored/sent JSON document -> Policy. Raises PolicyError (one line) for anything off."""
    if len(text.encode("utf-8")) > POLICY_MAX:
        raise PolicyError(f"policy is larger than {POLICY_MAX} bytes")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply for json
        raise PolicyError("policy is not valid JSON") from None
    if not isinstance(doc, dict):
        raise PolicyError("policy must be a JSON object")
    if doc.get("v") != VERSION:
        raise PolicyError(f"policy version must be {VERSION}")
    unknown = set(doc) - {"v", "auth", "allow", "deny", "hooks", "qadd", "qrm", "sadd", "srm", "fa", "lim"}
    if unknown:
        raise PolicyError(f"policy has unknown keys: {', '.join(sorted(k[:20] for k in unknown))}")
    users = tuple(_user(u) for u in _list(doc, "auth", MAX_USERS))
    if len({u.name for u in users}) != len(users):
        raise PolicyError("basic auth: a user name appears twice")
    if doc.get("fa", False) is not True and "fa" in doc:
        raise PolicyError("policy: fa must be true when present")
    try:
        hooks = tuple(from_fields(h) for h in _list(doc, "hooks", MAX_HOOKS))
    except WebhookError as exc:
        raise PolicyError(f"policy: {exc}") from None
    return Policy(
        users=users,
        allow=tuple(parse_cidr(_str(c, "allow")) for c in _list(doc, "allow", MAX_CIDRS)),
        deny=tuple(parse_cidr(_str(c, "deny")) for c in _list(doc, "deny", MAX_CIDRS)),
        hooks=hooks,
        request_add=tuple(_rule(r) for r in _list(doc, "qadd", MAX_HEADER_RULES)),
        request_remove=tuple(header_name(_str(n, "qrm")) for n in _list(doc, "qrm", MAX_HEADER_RULES)),
        response_add=tuple(_rule(r) for r in _list(doc, "sadd", MAX_HEADER_RULES)),
        response_remove=tuple(header_name(_str(n, "srm")) for n in _list(doc, "srm", MAX_HEADER_RULES)),
        forward_authorization="fa" in doc,
        limits=_limits(doc.get("lim", {})),
    )


def _limits(value: object) -> tuple[float, float, int]:
    """``lim``: ``{"rps": r, "burst": b, "inflight": n}``, each >= 0 (absent or 0: the operator's ceiling)."""
    if not isinstance(value, dict) or set(value) - {"rps", "burst", "inflight"}:
        raise PolicyError('policy: lim must be an object with only rps, burst and inflight')
    found = []
    for key in ("rps", "burst", "inflight"):
        raw = value.get(key, 0)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw < 1e9:
            raise PolicyError(f"policy: lim.{key} must be a number >= 0")
        found.append(raw)
    if not float(found[2]).is_integer():
        raise PolicyError("policy: lim.inflight must be a whole number")
    return float(found[0]), float(found[1]), int(found[2])


def _list(doc: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"policy: {key} must be a list")
    if len(value) > limit:
        raise PolicyError(f"policy: {key} has more than {limit} entries")
    return value


def _str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"policy: {key} entries must be strings")
    return value


def _rule(value: object) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise PolicyError("policy: a header rule must be [NAME, VALUE]")
    return header_rule(f"{value[0]}:{value[1]}")


def _user(data: object) -> User:
    if not isinstance(data, dict) or set(data) != {"u", "s", "h", "n", "r", "p"}:
        raise PolicyError("policy: a basic-auth entry must have exactly u, s, h, n, r, p")
    n, r, p = data["n"], data["r"], data["p"]
    if n not in (2**14, 2**15, 2**16) or r != SCRYPT_R or p != SCRYPT_P:
        raise PolicyError("policy: scrypt parameters must be N=2**14..2**16, r=8, p=1")
    return User(_check_user(_str(data["u"], "auth user")), _unb64(data["s"], SALT_BYTES, "a salt"),
                _unb64(data["h"], SCRYPT_DKLEN, "a password hash"), n, r, p)


def to_header(policy: Policy) -> str:
    return base64.urlsafe_b64encode(policy.to_json().encode("ascii")).decode("ascii").rstrip("=")


def from_header(value: str) -> Policy:
    """The $connect header -> Policy (PolicyError for too big / not base64url / malformed)."""
    value = value.strip()
    if len(value) > HEADER_MAX:
        raise PolicyError(f"{HEADER} is larger than {HEADER_MAX} bytes")
    try:
        standard = value.replace("-", "+").replace("_", "/")
        raw = base64.b64decode(standard + "=" * (-len(value) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise PolicyError(f"{HEADER} is not base64url") from None
    return parse(text)


# --------------------------------------------------------------------------- enforcement (forward)

@dataclass(frozen=True)
class Denial:
    status: int
    code: str  # the x-tunnel-error code
    message: str
    headers: dict[str, str] = field(default_factory=dict)


# Basic-auth credentials already checked against a policy (scrypt is slow on purpose), remembered
# per warm instance as a keyed digest of (policy, credentials): the 1,024 most recently used.
_verified: TTLMap[bytes, bool] = TTLMap(1024)
_INSTANCE_KEY = os.urandom(32)  # per process: a remembered digest is useless anywhere else


def _ip_allowed(policy: Policy, source_ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False  # rules exist and we cannot tell who it is: refuse
    candidates = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        candidates.append(addr.ipv4_mapped)
    if any(a in net for a in candidates for net in policy.deny if a.version == net.version):
        return False
    if not policy.allow:
        return True
    return any(a in net for a in candidates for net in policy.allow if a.version == net.version)


# Checked when the user name is unknown, so that answer costs the same scrypt as a wrong password.
_DUMMY_USER = User("", b"\0" * SALT_BYTES, b"\0" * SCRYPT_DKLEN)


def realm(tunnel_id: str) -> str:
    return f"{REALM} {tunnel_id}" if tunnel_id else REALM


def basic_user(authorization: str) -> str | None:
    """The user name of a ``Basic`` Authorization header (None when it is not one); no check."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token or len(token) > 1024:
        return None
    try:
        user, sep, _ = base64.b64decode(token.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return user.decode("utf-8", "replace") if sep else None


def _basic_ok(policy: Policy, raw: str, authorization: str) -> bool:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token or len(token) > 1024:
        return False
    digest = hmac.new(_INSTANCE_KEY, hashlib.sha256(raw.encode("utf-8")).digest() + token.strip().encode(),
                      hashlib.sha256).digest()
    if _verified.get(digest):
        return True
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user_bytes, sep, password = decoded.partition(b":")
    if not sep:
        return False
    user = user_bytes.decode("utf-8", "replace")
    match = next((u for u in policy.users if hmac.compare_digest(u.name.encode(), user.encode())), None)
    if match is None:
        User("", _DUMMY_USER.salt, _DUMMY_USER.key, policy.users[0].n).matches(password)  # same cost
        return False
    if not match.matches(password):
        return False
    _verified.put(digest, True)
    return True


def check(policy: Policy, raw: str, source_ip: str, headers: Mapping[str, str], body: bytes,
          now: float | None = None, tunnel_id: str = "", throttled_s: float = 0.0) -> Denial | None:
    """None when the request may pass; else why not. ``headers``: lower-cased names.
    ``throttled_s`` > 0: this caller spent its basic-auth failure budget (``gate``); credentials
    it sends are refused unchecked (429, ``Retry-After``) for that long."""
    if (policy.allow or policy.deny) and not _ip_allowed(policy, source_ip):
        return Denial(DENIAL_STATUS[IP_DENIED], IP_DENIED, "this address may not use the tunnel")
    if policy.users and throttled_s > 0 and headers.get("authorization"):
        return Denial(DENIAL_STATUS[AUTH_THROTTLED], AUTH_THROTTLED, "too many failed sign-ins: try again later",
                      {"retry-after": str(max(1, math.ceil(throttled_s)))})
    if policy.users and not _basic_ok(policy, raw, headers.get("authorization", "")):
        return Denial(DENIAL_STATUS[AUTH_REQUIRED], AUTH_REQUIRED, "authentication required",
                      {"www-authenticate": f'Basic realm="{realm(tunnel_id)}", charset="UTF-8"'})
    if policy.hooks and not any(v.verify(headers, body, now) for v in policy.hooks):
        return Denial(DENIAL_STATUS[WEBHOOK_INVALID], WEBHOOK_INVALID,
                      "webhook signature missing, invalid or outside its time window")
    return None


def apply_rules(headers: dict[str, list[str]], remove: Iterable[str], add: Iterable[tuple[str, str]]) -> None:
    """In place: drop each named header (any case), then set each added one."""
    drop = set(remove) | {name for name, _ in add}
    for name in [n for n in headers if n.lower() in drop]:
        del headers[name]
    for name, value in add:
        headers[name] = [value]
