"""$connect with REQUIRE_AUTH=true: one test per JWT attack; nothing is stored when rejected.

Tokens are made with PyJWT, an implementation independent of the verifier (HS* is verified with
the standard library, RS*/ES* through PyJWT's algorithm objects with our own claim checks).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from httptunnel import auth

from .helpers import CONN_TABLE, ROOT, FakeContext, connect_agent, load_handler, ws_event

SECRET = "s3cret-for-tests-only-" + "0123456789abcdef" * 4  # >= 64 bytes: no HS512 key-length warning
AUDIENCE = "http-tunnel-test"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def p256_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def p384_key():
    return ec.generate_private_key(ec.SECP384R1())


def jwk_of(key, kid: str) -> dict:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        return {**data, "kid": kid, "use": "sig"}
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


def claims(**over) -> dict:
    now = int(time.time())
    return {"sub": "alice", "exp": now + 600, "iat": now, **over}


def hs(payload: dict | None = None, alg: str = "HS256", secret: str = SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims() if payload is None else payload, secret, algorithm=alg, headers=headers)


def rs(key, payload: dict | None = None, alg: str = "RS256", kid: str = "k1") -> str:
    body = claims(aud=AUDIENCE) if payload is None else payload
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rows() -> list:
    return boto3.client("dynamodb").scan(TableName=CONN_TABLE)["Items"]


def connect(token: str | None = None, via: str = "header", headers: dict | None = None) -> dict:
    hdrs = dict(headers or {})
    query = None
    if token is not None and via == "header":
        hdrs["Authorization"] = f"Bearer {token}"
    elif token is not None:
        query = {"token": token}
    return load_handler("connect")(ws_event("connect.json", "conn-J", headers=hdrs, query=query), FakeContext())


@pytest.fixture
def hs_env(aws, mgmt, monkeypatch):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET", SECRET)


@pytest.fixture
def rs_env(aws, mgmt, monkeypatch, rsa_key):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWKS", json.dumps({"keys": [jwk_of(rsa_key, "k1")]}))
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)


@pytest.fixture
def ec_env(aws, mgmt, monkeypatch, rsa_key, p256_key, p384_key):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWKS", json.dumps({"keys": [jwk_of(p256_key, "p256"), jwk_of(p384_key, "p384"),
                                                    jwk_of(rsa_key, "rsa")]}))
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hs_tokens_accepted(hs_env, alg):
    assert connect(hs(alg=alg))["statusCode"] == 200
    assert any(r["connectionId"]["S"] == "conn-J" and r["subject"]["S"] == "alice" for r in rows())


def test_token_in_query_string_accepted(hs_env):
    assert connect(hs(), via="query")["statusCode"] == 200


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_rs_tokens_accepted_with_inline_jwks(rs_env, rsa_key, alg):
    assert connect(rs(rsa_key, alg=alg))["statusCode"] == 200


def _rejected(result: dict) -> None:
    assert result["statusCode"] == 401
    assert rows() == []


def test_missing_token(hs_env):
    _rejected(connect(None))


def test_garbage_token(hs_env):
    _rejected(connect("not.a.jwt"))


def test_expired(hs_env):
    _rejected(connect(hs(claims(exp=int(time.time()) - 60))))


def test_not_yet_valid(hs_env):
    _rejected(connect(hs(claims(nbf=int(time.time()) + 3600))))


def test_missing_exp(hs_env):
    payload = claims()
    del payload["exp"]
    _rejected(connect(hs(payload)))


def test_missing_sub(hs_env):
    payload = claims()
    del payload["sub"]
    _rejected(connect(hs(payload)))


def test_bad_signature(hs_env):
    _rejected(connect(hs(secret="another-secret-another-secret-0000")))


def test_tampered_payload(hs_env):
    header, _, sig = hs().split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(sub="mallory")).encode()).rstrip(b"=").decode()
    _rejected(connect(f"{header}.{forged}.{sig}"))


def test_alg_none(hs_env):
    token = jwt.encode(claims(), None, algorithm="none")
    _rejected(connect(token))


def test_alg_none_unsigned_handcrafted(rs_env):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    _rejected(connect(f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims())}."))


def hs_keyed_with_public_key(key, header: dict) -> str:
    """Algorithm confusion: an HS256 token whose HMAC key is the public key PEM."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(aud=AUDIENCE)).encode())}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def test_hs_token_signed_with_rsa_public_key_is_rejected(rs_env, rsa_key):
    _rejected(connect(hs_keyed_with_public_key(rsa_key, {"alg": "HS256", "typ": "JWT", "kid": "k1"})))


def test_hs_confusion_rejected_even_when_both_key_kinds_are_configured(rs_env, rsa_key, monkeypatch):
    monkeypatch.setenv("JWT_SECRET", SECRET)
    _rejected(connect(hs_keyed_with_public_key(rsa_key, {"alg": "HS256", "typ": "JWT"})))
    assert connect(hs(claims(aud=AUDIENCE)))["statusCode"] == 200  # the real secret still works


def test_unknown_kid(rs_env, rsa_key):
    _rejected(connect(rs(rsa_key, kid="k-unknown")))


def test_rs_token_from_another_key(rs_env):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _rejected(connect(rs(other, kid="k1")))


def test_issuer_and_audience_checked_when_configured(hs_env, monkeypatch):
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("JWT_AUDIENCE", "http-tunnel")
    _rejected(connect(hs(claims(iss="https://evil.example", aud="http-tunnel"))))
    _rejected(connect(hs(claims(iss="https://issuer.example", aud="other"))))
    _rejected(connect(hs(claims())))
    assert connect(hs(claims(iss="https://issuer.example", aud="http-tunnel")))["statusCode"] == 200


def test_require_auth_without_key_material_is_500_and_logged(aws, mgmt, monkeypatch, capsys):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    result = connect(hs())
    assert result["statusCode"] == 500 and rows() == []
    assert "no JWT_SECRET*/JWKS/JWKS_URL is configured" in capsys.readouterr().out


def test_auth_is_required_when_require_auth_is_unset(aws, mgmt, monkeypatch):
    """Secure by default: only an explicit REQUIRE_AUTH=false lets anonymous agents in."""
    monkeypatch.delenv("REQUIRE_AUTH")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    _rejected(connect(None))
    assert connect(hs())["statusCode"] == 200
    monkeypatch.setenv("REQUIRE_AUTH", "false")
    assert load_handler("connect")(ws_event("connect.json", "conn-anon"), FakeContext())["statusCode"] == 200


@pytest.mark.parametrize("secret", ["", "x" * 31, "é" * 15])
def test_hs_secret_shorter_than_32_bytes_is_a_configuration_error(aws, mgmt, monkeypatch, capsys, secret):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET", secret or "abc")
    result = connect(hs(secret=secret or "abc"))
    assert result["statusCode"] == 500 and rows() == []
    assert "shorter than 32 bytes" in capsys.readouterr().out


def test_short_secret_from_ssm_is_a_configuration_error(aws, mgmt, monkeypatch):
    boto3.client("ssm").put_parameter(Name="/tunnel/short", Value="three", Type="SecureString")
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET_SSM_PARAMETER", "/tunnel/short")
    assert connect(hs(secret="three"))["statusCode"] == 500 and rows() == []


def test_secret_of_exactly_32_bytes_is_enough(aws, mgmt, monkeypatch):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET", "k" * 32)
    assert connect(hs(secret="k" * 32))["statusCode"] == 200


def test_jwks_without_audience_is_a_configuration_error(rs_env, rsa_key, monkeypatch, capsys):
    monkeypatch.delenv("JWT_AUDIENCE")
    assert connect(rs(rsa_key))["statusCode"] == 500 and rows() == []
    assert "JWKS needs JWT_AUDIENCE" in capsys.readouterr().out


def test_jwks_token_for_another_audience_is_rejected(rs_env, rsa_key):
    """A token the shared identity provider minted for another app."""
    _rejected(connect(rs(rsa_key, claims(aud="some-other-app"))))
    _rejected(connect(rs(rsa_key, claims())))  # no aud at all
    assert connect(rs(rsa_key, claims(aud=["some-other-app", AUDIENCE])))["statusCode"] == 200


def test_a_token_naming_an_audience_is_refused_when_none_is_configured(hs_env):
    _rejected(connect(hs(claims(aud="someone"))))


def test_crit_header_is_refused(hs_env):
    _rejected(connect(hs(headers={"crit": ["exp"]})))


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
def test_malformed_max_lifetime_is_a_configuration_error(hs_env, monkeypatch, value):
    monkeypatch.setenv("JWT_MAX_LIFETIME", value)
    assert connect(hs())["statusCode"] == 500 and rows() == []


def test_max_lifetime(hs_env, monkeypatch):
    monkeypatch.setenv("JWT_MAX_LIFETIME", "3600")
    now = int(time.time())
    assert connect(hs(claims(iat=now, exp=now + 3600)))["statusCode"] == 200
    rows_after_ok = rows()
    for payload in (claims(iat=now, exp=now + 3601 + auth.LEEWAY_S),
                    claims(iat=now - 86_400, exp=now + 600),   # issued a day ago, lives a day
                    {"sub": "alice", "exp": now + 600}):       # no iat: lifetime unknown
        result = connect(hs(payload))
        assert result["statusCode"] == 401 and rows() == rows_after_ok
    # a far-future exp with a forged iat just before it is still bounded from now
    assert connect(hs(claims(iat=now + 86_400 * 30, exp=now + 86_400 * 30 + 60)))["statusCode"] == 401


@pytest.mark.parametrize("alg,kid", [("ES256", "p256"), ("ES384", "p384")])
def test_es_tokens_accepted(ec_env, p256_key, p384_key, alg, kid):
    key = p256_key if kid == "p256" else p384_key
    assert connect(rs(key, alg=alg, kid=kid))["statusCode"] == 200


def es_by_hand(key, alg: str, kid: str, digest) -> str:
    """Sign with any curve/hash pair (PyJWT refuses to make these)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    signing_input = f"{b64(json.dumps({'alg': alg, 'kid': kid}).encode())}.{b64(json.dumps(claims(aud=AUDIENCE)).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return f"{signing_input}.{b64(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


def test_es_token_on_the_wrong_curve_is_rejected(ec_env, p256_key, p384_key):
    ok = es_by_hand(p256_key, "ES256", "p256", hashes.SHA256())
    assert load_handler("connect")(ws_event("connect.json", "conn-ok", headers={"Authorization": f"Bearer {ok}"}),
                                   FakeContext())["statusCode"] == 200  # the helper makes valid tokens
    before = rows()
    for token in (es_by_hand(p384_key, "ES256", "p384", hashes.SHA256()),  # ES256 must use P-256
                  es_by_hand(p256_key, "ES384", "p256", hashes.SHA384())):
        assert connect(token)["statusCode"] == 401 and rows() == before


def test_key_family_must_match_the_algorithm(ec_env, rsa_key, p256_key):
    _rejected(connect(rs(rsa_key, alg="RS256", kid="p256")))  # an RS token naming an EC key
    _rejected(connect(rs(p256_key, alg="ES256", kid="rsa")))  # an ES token naming an RSA key


def test_es512_is_not_accepted(ec_env):
    p521 = ec.generate_private_key(ec.SECP521R1())
    _rejected(connect(rs(p521, alg="ES512", kid="p256")))


def test_es_token_with_a_forged_signature_is_rejected(ec_env, p256_key):
    token = rs(p256_key, alg="ES256", kid="p256")
    header, payload, sig = token.split(".")
    forged = b64(json.dumps(claims(sub="mallory", aud=AUDIENCE)).encode())
    _rejected(connect(f"{header}.{forged}.{sig}"))


def test_hs_verification_never_imports_pyjwt_or_cryptography():
    """The connect Lambda's cold start: a shared-secret deployment loads neither (fails when auth.py
    imports jwt at module level, as it did)."""
    code = f"""
import json, sys, time, hmac, hashlib, base64
from unittest import mock
sys.path[:0] = [{str(ROOT / 'shared')!r}]
import os
os.environ.update({{"REQUIRE_AUTH": "true", "JWT_SECRET": {SECRET!r}}})
from httptunnel import auth, connect  # connect: the connect handler's whole module graph
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
si = enc(json.dumps({{"alg": "HS256", "typ": "JWT"}}).encode()) + "." + enc(json.dumps({{"sub": "a", "exp": now + 60}}).encode())
token = si + "." + enc(hmac.new({SECRET!r}.encode(), si.encode(), hashlib.sha256).digest())
auth.check_configured()
assert auth.verify(token).subject == "a"
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jwt", "cryptography"))
print(json.dumps(loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_tokens_are_never_logged(hs_env, capsys):
    token = hs()
    connect(token)
    connect(token + "x")
    out = capsys.readouterr().out
    assert token.split(".")[2] not in out and token not in out


def test_secret_from_ssm(aws, mgmt, monkeypatch):
    boto3.client("ssm").put_parameter(Name="/tunnel/jwt", Value=SECRET, Type="SecureString")
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET_SSM_PARAMETER", "/tunnel/jwt")
    assert connect(hs())["statusCode"] == 200


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _JwksServer:
    """Serves a JWKS at /.well-known/jwks.json over https (or plain http), or redirects to `redirect_to`."""

    def __init__(self, jwks: dict, tls: tuple[Path, Path] | None = None, redirect_to: str | None = None):
        self.jwks = jwks
        self.hits = 0
        self.redirect_to = redirect_to
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                if outer.redirect_to:
                    self.send_response(302)
                    self.send_header("location", outer.redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def tls(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1 that the JWKS fetch trusts (and only for this test)."""
    cert, key = _self_signed(tmp_path)
    monkeypatch.setattr(auth, "_tls_context", lambda: ssl.create_default_context(cafile=str(cert)))
    return cert, key


@pytest.fixture
def url_env(aws, mgmt, monkeypatch):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)


def test_jwks_url_fetched_and_cached(url_env, monkeypatch, rsa_key, tls):
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}, tls) as server:
        monkeypatch.setenv("JWKS_URL", server.url)
        assert connect(rs(rsa_key))["statusCode"] == 200
        assert connect(rs(rsa_key))["statusCode"] == 200
        assert server.hits == 1
        # unknown kid: one refetch allowed only after JWKS_REFETCH_MIN_S, so still one hit, and rejected
        assert connect(rs(rsa_key, kid="k2"))["statusCode"] == 401
        assert server.hits == 1


def test_jwks_url_rotation_picks_up_new_kid(url_env, monkeypatch, rsa_key, p256_key, tls):
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}, tls) as server:
        monkeypatch.setenv("JWKS_URL", server.url)
        monkeypatch.setattr(auth, "JWKS_REFETCH_MIN_S", 0)
        assert connect(rs(rsa_key))["statusCode"] == 200
        server.jwks = {"keys": [jwk_of(rsa_key, "k1"), jwk_of(p256_key, "k2")]}
        assert connect(rs(p256_key, alg="ES256", kid="k2"))["statusCode"] == 200
        assert server.hits == 2


def test_jwks_url_unreachable_is_401(url_env, monkeypatch, rsa_key):
    monkeypatch.setenv("JWKS_URL", "https://127.0.0.1:9/jwks.json")
    _rejected(connect(rs(rsa_key)))


def test_jwks_url_must_be_https(url_env, monkeypatch, rsa_key):
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}) as plain:
        monkeypatch.setenv("JWKS_URL", plain.url)
        assert connect(rs(rsa_key))["statusCode"] == 500 and rows() == []
        assert plain.hits == 0


def test_jwks_fetch_refuses_a_redirect_off_https(url_env, monkeypatch, rsa_key, tls):
    """urllib alone follows https -> http: a network attacker could then serve their own keys."""
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}) as plain, \
            _JwksServer({}, tls, redirect_to=None) as redirector:
        redirector.redirect_to = plain.url
        monkeypatch.setenv("JWKS_URL", redirector.url)
        _rejected(connect(rs(rsa_key)))
        assert redirector.hits == 1 and plain.hits == 0


def test_jwks_fetch_follows_a_redirect_to_https(url_env, monkeypatch, rsa_key, tls):
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}, tls) as target, \
            _JwksServer({}, tls) as redirector:
        redirector.redirect_to = target.url
        monkeypatch.setenv("JWKS_URL", redirector.url)
        assert connect(rs(rsa_key))["statusCode"] == 200
        assert target.hits == 1


def test_jwks_url_with_an_untrusted_certificate_is_401(url_env, monkeypatch, rsa_key, tmp_path):
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}, _self_signed(tmp_path)) as server:
        monkeypatch.setenv("JWKS_URL", server.url)
        _rejected(connect(rs(rsa_key)))


def test_named_subdomain_granted_by_claim(hs_env):
    token = hs(claims(tunnel_subdomains=["myapp", "other"]))
    est = connect_agent("conn-S", headers={"Authorization": f"Bearer {token}", "X-Tunnel-Subdomain": "myapp"})
    assert est["tunnel_id"] == "myapp" and est["subdomain"] == "myapp"
    assert est["public_url"].endswith("/myapp/")


def test_named_subdomain_not_in_claim_is_403(hs_env):
    token = hs(claims(tunnel_subdomains=["other"]))
    result = connect(token, headers={"X-Tunnel-Subdomain": "myapp"})
    assert result["statusCode"] == 403 and rows() == []


def test_custom_claim_name(hs_env, monkeypatch):
    monkeypatch.setenv("JWT_SUBDOMAINS_CLAIM", "names")
    token = hs(claims(names="myapp"))
    assert connect(token, headers={"X-Tunnel-Subdomain": "myapp"})["statusCode"] == 200


def test_named_subdomain_held_by_another_subject_is_409(hs_env):
    alice = hs(claims(tunnel_subdomains=["myapp"]))
    bob = hs(claims(sub="bob", tunnel_subdomains=["myapp"]))
    assert connect(alice, headers={"X-Tunnel-Subdomain": "myapp"})["statusCode"] == 200
    before = rows()
    result = load_handler("connect")(ws_event("connect.json", "conn-B", headers={
        "Authorization": f"Bearer {bob}", "X-Tunnel-Subdomain": "myapp"}), FakeContext())
    assert result["statusCode"] == 409 and rows() == before
    again = load_handler("connect")(ws_event("connect.json", "conn-C", headers={
        "Authorization": f"Bearer {alice}", "X-Tunnel-Subdomain": "myapp"}), FakeContext())
    assert again["statusCode"] == 200
