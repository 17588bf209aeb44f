"""$connect with REQUIRE_AUTH=true: one test per JWT attack; nothing is stored when rejected."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from httptunnel import auth

from .helpers import CONN_TABLE, FakeContext, connect_agent, load_handler, ws_event

SECRET = "s3cret-for-tests-only-" + "0123456789abcdef" * 4  # >= 64 bytes: no HS512 key-length warning


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key, kid: str) -> dict:
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


def claims(**over) -> dict:
    now = int(time.time())
    return {"sub": "alice", "exp": now + 600, "iat": now, **over}


def hs(payload: dict | None = None, alg: str = "HS256", secret: str = SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims() if payload is None else payload, secret, algorithm=alg, headers=headers)


def rs(key, payload: dict | None = None, alg: str = "RS256", kid: str = "k1") -> str:
    return jwt.encode(claims() if payload is None else payload, key, algorithm=alg, headers={"kid": kid})


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


def test_hs_token_signed_with_rsa_public_key_is_rejected(rs_env, rsa_key):
    """Algorithm confusion: HS256 with the public key PEM as the HMAC secret."""
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hmac
    import hashlib
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    signing_input = f"{enc(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'}).encode())}." \
                    f"{enc(json.dumps(claims()).encode())}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    _rejected(connect(f"{signing_input}.{enc(sig)}"))


def test_hs_confusion_rejected_even_when_both_key_kinds_are_configured(rs_env, rsa_key, monkeypatch):
    monkeypatch.setenv("JWT_SECRET", SECRET)
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    import hmac
    import hashlib
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{enc(header)}.{enc(json.dumps(claims()).encode())}"
    sig = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    _rejected(connect(f"{signing_input}.{enc(sig)}"))


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


class _JwksServer:
    def __init__(self, jwks: dict):
        self.jwks = jwks
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_jwks_url_fetched_and_cached(aws, mgmt, monkeypatch, rsa_key):
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}) as server:
        monkeypatch.setenv("REQUIRE_AUTH", "true")
        monkeypatch.setenv("JWKS_URL", server.url)
        assert connect(rs(rsa_key))["statusCode"] == 200
        assert connect(rs(rsa_key))["statusCode"] == 200
        assert server.hits == 1
        # unknown kid: one refetch allowed only after JWKS_REFETCH_MIN_S, so still one hit, and rejected
        assert connect(rs(rsa_key, kid="k2"))["statusCode"] == 401
        assert server.hits == 1


def test_jwks_url_rotation_picks_up_new_kid(aws, mgmt, monkeypatch, rsa_key):
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with _JwksServer({"keys": [jwk_of(rsa_key, "k1")]}) as server:
        monkeypatch.setenv("REQUIRE_AUTH", "true")
        monkeypatch.setenv("JWKS_URL", server.url)
        monkeypatch.setattr(auth, "JWKS_REFETCH_MIN_S", 0)
        assert connect(rs(rsa_key))["statusCode"] == 200
        server.jwks = {"keys": [jwk_of(rsa_key, "k1"), jwk_of(new_key, "k2")]}
        assert connect(rs(new_key, kid="k2"))["statusCode"] == 200
        assert server.hits == 2


def test_jwks_url_unreachable_is_401(aws, mgmt, monkeypatch, rsa_key):
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWKS_URL", "http://127.0.0.1:9/jwks.json")
    _rejected(connect(rs(rsa_key)))


def test_named_subdomain_granted_by_claim(hs_env):
    token = hs(claims(tunnel_subdomains=["myapp", "other"]))
    est = connect_agent("conn-S", headers={"Authorization": f"Bearer {token}", "X-Tunnel-Subdomain": "myapp"})
    assert est["tunnel_id"] == "myapp" and est["subdomain"] == "myapp"
    assert est["public_url"].endswith("/myapp")


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
