"""edge_origin: who called forward_stream, when CloudFront stands in front of the function URL.

With a domain, the ``function_url`` edge is CloudFront -> function URL (terraform/modules/cloudfront):
a function URL answers only on its own ``<url-id>.lambda-url.<region>.on.aws`` name, so the
function URL event then carries that name as ``Host``/``domainName`` and CloudFront's address as
``sourceIp``. What the caller really used arrives in headers:

- ``x-tunnel-host``: the viewer's ``Host`` (``<id>.<domain>``), copied by the distribution's
  viewer-request CloudFront Function (terraform/modules/cloudfront/viewer_request.js), which
  overwrites whatever a caller sent under that name;
- ``x-tunnel-viewer-address``: the viewer's IP (``event.viewer.ip``), set by the same function;
  ``CloudFront-Viewer-Address`` (``<ip>:<port>``, added by CloudFront) is the fallback;
- ``x-tunnel-origin-verify``: a secret CloudFront adds to every origin request (an origin custom
  header; a viewer's header of that name is overwritten).

forward_stream believes the first two only when the third matches the secret (constant-time
compare), and then routes by the tunnel's host and checks edge policies against the viewer's
address. While CloudFront fronts the URL (``EDGE_ORIGIN_SECRET_SSM_PARAMETER`` set), a request
without the secret - someone calling the function URL directly - is refused with 403
``edge_bypass``: it would otherwise reach tunnels under a forged host and source IP. Without
CloudFront (the variable empty: no domain) the event is used as it is, as on every other edge.

The secret is an SSM SecureString (Terraform writes it), read once per container; a request
carrying another value re-reads it at most once a minute, so a rotated secret is picked up
without new containers while a caller guessing cannot make forward_stream call SSM more often.
The four headers never reach the agent.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import time

from . import aws, config, events
from .replies import ForwardResult, fail
from .ttlmap import TTLMap

HOST_HEADER = "x-tunnel-host"
VIEWER_HEADER = "x-tunnel-viewer-address"
SECRET_HEADER = "x-tunnel-origin-verify"
CLOUDFRONT_VIEWER_ADDRESS = "cloudfront-viewer-address"
EDGE_HEADERS = (HOST_HEADER, VIEWER_HEADER, SECRET_HEADER, CLOUDFRONT_VIEWER_ADDRESS)
MIN_SECRET_BYTES = 32
REFETCH_S = 60.0  # a mismatching request re-reads the secret at most this often per container
BYPASS_MESSAGE = "this function URL is served through the tunnel's domain only"

_cached: TTLMap[str, tuple[bytes, float]] = TTLMap(4)  # parameter name -> (secret, monotonic time read)


def fronted() -> bool:
    """Whether CloudFront stands in front of this function URL (Terraform sets the parameter)."""
    return bool(config.edge_origin_secret_ssm_parameter())


def reset() -> None:
    """Forget the secret (tests: a fresh container)."""
    _cached.clear()


def _read(name: str) -> bytes:
    out = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)
    value = str(out["Parameter"]["Value"]).encode("utf-8")
    if len(value) < MIN_SECRET_BYTES:
        raise config.ConfigError(f"edge origin secret {name} is shorter than {MIN_SECRET_BYTES} bytes")
    return value


def _secret(name: str, refresh: bool) -> bytes:
    """The secret, read once; re-read on ``refresh`` if the last read is REFETCH_S old."""
    held = _cached.get(name)
    if held is not None and (not refresh or time.monotonic() - held[1] < REFETCH_S):
        return held[0]
    value = _read(name)
    _cached.put(name, (value, time.monotonic()))
    return value


def secret_matches(sent: str) -> bool:
    """Constant-time comparison of the header's value with the secret (re-read once if it differs)."""
    name = config.edge_origin_secret_ssm_parameter()
    given = sent.encode("utf-8", "surrogatepass")
    if hmac.compare_digest(given, _secret(name, refresh=False)):
        return True
    return hmac.compare_digest(given, _secret(name, refresh=True))


def _ip(value: str) -> str:
    """``value`` as a normalised IP address, else ""."""
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return ""


def viewer_ip(headers: dict[str, str]) -> str:
    """The viewer's address CloudFront reported: the function's header (a plain IP), else
    CloudFront-Viewer-Address (always ``<ip>:<port>``, IPv6 unbracketed: the port is what follows
    the last colon)."""
    return _ip(headers.get(VIEWER_HEADER, "")) or _ip(headers.get(CLOUDFRONT_VIEWER_ADDRESS, "").rsplit(":", 1)[0])


def _chain_to(xff: str, ip: str) -> str:
    """X-Forwarded-For up to the viewer's own entry: CloudFront appended the viewer, and the function
    URL then appended CloudFront's address, which is no hop the app should see."""
    parts = [p.strip() for p in xff.split(",")]
    for i in range(len(parts) - 1, -1, -1):
        if _ip(parts[i]) == ip:
            return ", ".join(parts[:i + 1])
    return xff


def viewer_request(req: events.HttpEvent) -> events.HttpEvent | ForwardResult:
    """The request as the viewer made it (CloudFront in front), the event as it is (no CloudFront),
    or the refusal: 403 ``edge_bypass`` without the secret, 502 when CloudFront's headers are missing."""
    if not fronted():
        return req
    sent = req.headers.get(SECRET_HEADER, "")
    if not sent or not secret_matches(sent):
        return fail(403, "edge_bypass", BYPASS_MESSAGE)
    host = req.headers.get(HOST_HEADER, "").strip().lower()
    ip = viewer_ip(req.headers)
    if not host or not ip:
        return fail(502, "internal_error", "the edge did not say which host and address were called")
    return dataclasses.replace(req, headers=viewer_headers(req.headers, host, ip), domain_name=host, source_ip=ip)


def viewer_headers(headers: dict[str, str], host: str, ip: str) -> dict[str, str]:
    """The request's headers as the viewer sent them: CloudFront's four dropped, the viewer's Host,
    X-Forwarded-For up to the viewer (also caller_ws's, for a handshake CloudFront passed on)."""
    out = {k: v for k, v in headers.items() if k not in EDGE_HEADERS}
    out["host"] = host
    if "x-forwarded-for" in out:
        out["x-forwarded-for"] = _chain_to(out["x-forwarded-for"], ip)
    return out
