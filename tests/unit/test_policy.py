"""The edge policy document and its checks (httptunnel.policy, httptunnel.webhooks).

Published test vectors:
* GitHub: secret "It's a Secret to Everybody", payload "Hello, World!" ->
  sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17
  (https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries, "Testing the webhook
  payload validation").
* Slack: the worked example of https://api.slack.com/authentication/verifying-requests-from-slack
  (secret 8f742231b10e8888abcd99yyyzzz85a5, timestamp 1531420618, slash-command body).
* Stripe and Shopify publish no fixed vector; their tests build the signature the way their docs
  describe (https://stripe.com/docs/webhooks/signatures#verify-manually,
  https://shopify.dev/docs/apps/build/webhooks/subscribe/https) and check each part matters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from httptunnel import policy, webhooks
from httptunnel.policy import PolicyError

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = 1531420618
SLACK_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
              b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
              b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgc"
              b"ZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SLACK_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def verify(spec: str, headers: dict[str, str], body: bytes, now: float = 0.0) -> bool:
    return webhooks.parse_spec(spec).verify(headers, body, now)


# --------------------------------------------------------------------------- webhooks

def test_github_published_vector():
    assert verify(f"github:{GITHUB_SECRET}", {"x-hub-signature-256": GITHUB_SIG}, b"Hello, World!")
    assert not verify(f"github:{GITHUB_SECRET}", {"x-hub-signature-256": GITHUB_SIG}, b"Hello, World!\n")
    assert not verify("github:another", {"x-hub-signature-256": GITHUB_SIG}, b"Hello, World!")
    assert not verify(f"github:{GITHUB_SECRET}", {}, b"Hello, World!")
    assert not verify(f"github:{GITHUB_SECRET}", {"x-hub-signature-256": GITHUB_SIG[7:]}, b"Hello, World!")


def test_slack_published_vector_and_its_five_minute_window():
    headers = {"x-slack-signature": SLACK_SIG, "x-slack-request-timestamp": str(SLACK_TS)}
    assert verify(f"slack:{SLACK_SECRET}", headers, SLACK_BODY, now=SLACK_TS + 300)
    assert verify(f"slack:{SLACK_SECRET}", headers, SLACK_BODY, now=SLACK_TS - 300)
    assert not verify(f"slack:{SLACK_SECRET}", headers, SLACK_BODY, now=SLACK_TS + 301)  # a replay
    assert not verify(f"slack:{SLACK_SECRET}", headers, SLACK_BODY + b"&x=1", now=SLACK_TS)
    assert not verify(f"slack:{SLACK_SECRET}", {**headers, "x-slack-request-timestamp": str(SLACK_TS + 1)},
                      SLACK_BODY, now=SLACK_TS)
    assert not verify(f"slack:{SLACK_SECRET}", {**headers, "x-slack-request-timestamp": "1e9"}, SLACK_BODY,
                      now=SLACK_TS)


def _stripe_header(secret: str, t: int, body: bytes, extra: str = "") -> str:
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}{extra}"


def test_stripe_signature_timestamp_and_300_s_tolerance():
    secret, body, t = "whsec_test_secret", b'{"id": "evt_1", "object": "event"}', 1_700_000_000
    header = _stripe_header(secret, t, body, ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39")
    assert verify(f"stripe:{secret}", {"stripe-signature": header}, body, now=t + 300)
    assert not verify(f"stripe:{secret}", {"stripe-signature": header}, body, now=t + 301)
    assert not verify(f"stripe:{secret}", {"stripe-signature": header}, body + b" ", now=t)
    forged_t = header.replace(f"t={t}", f"t={t + 1}")
    assert not verify(f"stripe:{secret}", {"stripe-signature": forged_t}, body, now=t)
    rotated = f"t={t},v1={'0' * 64}," + header.split(",")[1]  # several v1: any one may match
    assert verify(f"stripe:{secret}", {"stripe-signature": rotated}, body, now=t)
    assert not verify(f"stripe:{secret}", {"stripe-signature": f"v1={header.split('v1=')[1]}"}, body, now=t)


def test_shopify_base64_of_the_body():
    secret, body = "shpss_secret", b'{"id":820982911946154508}'
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    assert verify(f"shopify:{secret}", {"x-shopify-hmac-sha256": sig}, body)
    assert not verify(f"shopify:{secret}", {"x-shopify-hmac-sha256": sig}, body[:-1])
    assert not verify(f"shopify:{secret}", {"x-shopify-hmac-sha256": sig.lower()}, body)


def test_generic_hmac_hex_base64_prefix_and_secrets_with_colons():
    body = b"\x00\xffbinary body"
    digest = hmac.new(b"s:e:c", body, hashlib.sha256).digest()
    assert verify("hmac-sha256:X-Sig:s:e:c:hex:sha256=", {"x-sig": "sha256=" + digest.hex()}, body)
    assert verify("hmac-sha256:X-Sig:s:e:c:hex:sha256=", {"x-sig": "sha256=" + digest.hex().upper()}, body)
    assert not verify("hmac-sha256:X-Sig:s:e:c:hex:sha256=", {"x-sig": digest.hex()}, body)
    assert verify("hmac-sha256:X-Sig:s:e:c:base64", {"x-sig": base64.b64encode(digest).decode()}, body)
    plain = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert verify("hmac-sha256:x-sig:secret", {"x-sig": plain}, body)
    v = webhooks.parse_spec("hmac-sha256:X-Sig:s:e:c:hex:sha256=")
    assert (v.header, v.secret, v.encoding, v.prefix) == ("x-sig", "s:e:c", "hex", "sha256=")


@pytest.mark.parametrize("spec, message", [
    ("twilio:abc", "unknown webhook provider 'twilio'"),
    ("github", "expected PROVIDER:SECRET"),
    ("github:", "the secret is empty"),
    ("hmac-sha256:bad header:s", "valid header name"),
    ("hmac-sha256:x-sig:s:hex:" + "p" * 40, "prefix"),
])
def test_bad_webhook_specs_are_one_line(spec, message):
    with pytest.raises(webhooks.WebhookError, match=message) as err:
        webhooks.parse_spec(spec)
    assert "\n" not in str(err.value)


def test_masked_description_never_shows_a_short_secret_or_a_long_ones_tail():
    assert "abc" not in webhooks.parse_spec("github:abc").masked()
    masked = webhooks.parse_spec("stripe:whsec_0123456789abcdefXYZ").masked()
    assert masked.startswith("stripe secret whse") and "XYZ" not in masked


# --------------------------------------------------------------------------- the document

def full_policy() -> policy.Policy:
    return policy.build(basic_auth=["alice:s3cret pw", "bob:pw2"], allow=["10.0.0.0/8", "2001:db8::/32"],
                        deny=["10.1.0.0/16"], hooks=[f"github:{GITHUB_SECRET}", "hmac-sha256:X-Sig:k:base64"],
                        request_add=["X-From-Edge: yes"], request_remove=["Authorization"],
                        response_add=["X-Frame-Options: DENY"], response_remove=["server"])


def test_round_trip_through_the_connect_header_is_canonical():
    built = full_policy()
    header = policy.to_header(built)
    assert len(header) <= policy.HEADER_MAX and "=" not in header
    again = policy.from_header(header)
    assert again == built and again.to_json() == built.to_json()
    doc = json.loads(built.to_json())
    assert "s3cret" not in built.to_json() and doc["auth"][0]["n"] == 2**14 and doc["auth"][0]["r"] == 8
    assert doc["qrm"] == ["authorization"] and doc["qadd"] == [["x-from-edge", "yes"]]


def test_passwords_are_salted_scrypt_hashes():
    a, b = policy.build(basic_auth=["u:same"]), policy.build(basic_auth=["u:same"])
    assert a.users[0].salt != b.users[0].salt and a.users[0].key != b.users[0].key
    expected = hashlib.scrypt(b"same", salt=a.users[0].salt, n=2**14, r=8, p=1, dklen=32)
    assert a.users[0].key == expected and a.users[0].matches(b"same") and not a.users[0].matches(b"Same")


def test_empty_policy_is_falsy_and_minimal():
    assert not policy.build() and policy.build().to_json() == '{"v":1}'


@pytest.mark.parametrize("kwargs, message", [
    (dict(basic_auth=[f"u{i}:p" for i in range(11)]), "at most 10"),
    (dict(basic_auth=["nopass"]), "USER:PASS"),
    (dict(basic_auth=["a:1", "a:2"]), "appears twice"),
    (dict(allow=["10.0.0.1/8"]), "is not an IP address or CIDR"),
    (dict(deny=["example.com"]), "is not an IP address or CIDR"),
    (dict(hooks=["paypal:x"]), "unknown webhook provider"),
    (dict(request_add=["Host: evil"]), "belongs to the tunnel"),
    (dict(response_add=["X-A: line\r\nbreak"]), "visible ASCII"),
    (dict(request_remove=["bad name"]), "is not a header name"),
    (dict(hooks=[f"github:{'k' * 250}"] * 10, allow=[f"10.0.{i}.0/24" for i in range(50)],
          deny=[f"10.1.{i}.0/24" for i in range(50)]), "larger than 4096"),
])
def test_bad_options_are_refused_with_one_line(kwargs, message):
    with pytest.raises(PolicyError, match=message) as err:
        policy.build(**kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("doc, message", [
    ("[]", "JSON object"),
    ("{", "not valid JSON"),
    ('{"v":2}', "version"),
    ('{"v":1,"oauth":[]}', "unknown keys: oauth"),
    ('{"v":1,"hooks":[{"p":"twilio","k":"x"}]}', "unknown webhook provider"),
    ('{"v":1,"auth":[{"u":"a","s":"AAAA","h":"AAAA","n":16384,"r":8,"p":1}]}', "salt"),
    ('{"v":1,"auth":[{"u":"a","s":"%s","h":"%s","n":2,"r":8,"p":1}]}' % ("A" * 22 + "==", "A" * 43 + "="),
     "scrypt parameters"),
    ('{"v":1,"allow":"10.0.0.0/8"}', "must be a list"),
    ('{"v":1,"qadd":[["x-a"]]}', "NAME, VALUE"),
])
def test_malformed_documents_are_refused(doc, message):
    with pytest.raises(PolicyError, match=message):
        policy.parse(doc)


def test_header_size_cap_and_encoding():
    with pytest.raises(PolicyError, match="larger than"):
        policy.from_header("A" * (policy.HEADER_MAX + 1))
    with pytest.raises(PolicyError, match="base64url"):
        policy.from_header("@@@@")


# --------------------------------------------------------------------------- enforcement

def auth(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_ip_rules_deny_wins_allow_list_ipv6_and_mapped():
    p = policy.build(allow=["10.0.0.0/8", "2001:db8::/32"], deny=["10.1.0.0/16"])
    raw = p.to_json()
    assert policy.check(p, raw, "10.2.3.4", {}, b"") is None
    assert policy.check(p, raw, "10.1.2.3", {}, b"").code == "ip_denied"
    assert policy.check(p, raw, "192.0.2.1", {}, b"").status == 403
    assert policy.check(p, raw, "2001:db8::5", {}, b"") is None
    assert policy.check(p, raw, "2001:db9::5", {}, b"").code == "ip_denied"
    assert policy.check(p, raw, "::ffff:10.2.3.4", {}, b"") is None
    assert policy.check(p, raw, "::ffff:10.1.0.1", {}, b"").code == "ip_denied"
    assert policy.check(p, raw, "", {}, b"").code == "ip_denied"  # unknown source: refused
    only_deny = policy.build(deny=["127.0.0.2/32"])
    assert policy.check(only_deny, only_deny.to_json(), "127.0.0.1", {}, b"") is None
    assert policy.check(only_deny, only_deny.to_json(), "127.0.0.2", {}, b"").code == "ip_denied"


def test_basic_auth_401_with_challenge_and_remembered_digest(monkeypatch):
    p = policy.build(basic_auth=["alice:s3cret"])
    raw = p.to_json()
    denied = policy.check(p, raw, "1.2.3.4", {}, b"")
    assert (denied.status, denied.code) == (401, "basic_auth_required")
    assert denied.headers["www-authenticate"].startswith('Basic realm="http-tunnel"')
    for bad in (auth("alice", "wrong"), auth("mallory", "s3cret"), {"authorization": "Basic !!"},
                {"authorization": "Bearer x"}, {"authorization": "Basic " + base64.b64encode(b"alice").decode()}):
        assert policy.check(p, raw, "1.2.3.4", bad, b"").code == "basic_auth_required"
    hashed = []
    original = policy.User.matches
    monkeypatch.setattr(policy.User, "matches", lambda self, pw: hashed.append(pw) or original(self, pw))
    assert policy.check(p, raw, "1.2.3.4", auth("alice", "s3cret"), b"") is None
    assert policy.check(p, raw, "1.2.3.4", auth("alice", "s3cret"), b"") is None
    assert hashed == [b"s3cret"]  # the second request was answered from the verified-digest memory
    other = policy.build(basic_auth=["alice:other"])  # the memory is per policy, not per header only
    assert policy.check(other, other.to_json(), "1.2.3.4", auth("alice", "s3cret"), b"").status == 401


def test_webhook_any_verifier_passes_and_failures_are_403():
    p = policy.build(hooks=[f"github:{GITHUB_SECRET}", "shopify:zzz"])
    raw = p.to_json()
    assert policy.check(p, raw, "1.2.3.4", {"x-hub-signature-256": GITHUB_SIG}, b"Hello, World!") is None
    denied = policy.check(p, raw, "1.2.3.4", {"x-hub-signature-256": GITHUB_SIG}, b"Hello, World")
    assert (denied.status, denied.code) == (403, "webhook_signature_invalid")


def test_order_ip_then_auth_then_webhook():
    p = policy.build(basic_auth=["a:b"], deny=["1.2.3.4/32"], hooks=["github:x"])
    raw = p.to_json()
    assert policy.check(p, raw, "1.2.3.4", {}, b"").code == "ip_denied"
    assert policy.check(p, raw, "1.2.3.5", {}, b"").code == "basic_auth_required"
    assert policy.check(p, raw, "1.2.3.5", auth("a", "b"), b"").code == "webhook_signature_invalid"


def test_header_rules_remove_then_set_case_insensitively():
    headers = {"Authorization": ["Basic x"], "X-Keep": ["1"], "x-from-edge": ["spoofed"]}
    policy.apply_rules(headers, ["authorization"], [("x-from-edge", "yes")])
    assert headers == {"X-Keep": ["1"], "x-from-edge": ["yes"]}
