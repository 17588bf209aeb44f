"""Property tests (hypothesis): codec, API Gateway body/headers, routing, rewriting, and forward end to end."""

from __future__ import annotations

import base64
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httptunnel import events, protocol, rewrite, routing

from .helpers import connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event

header_names = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x10FFFF,
                                               blacklist_categories=("Cs",)), max_size=40)
headers_st = st.dictionaries(header_names, st.lists(header_values, min_size=1, max_size=4), max_size=8)
tunnel_ids = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=12, max_size=12)
path_chars = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%/"
paths = st.text(alphabet=path_chars, max_size=60).map(lambda p: "/" + p)
queries = st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%/?[]| ^`{}\"<>", max_size=80)
# What a request target can carry: forward refuses a query with a space (routing.request_target).
target_queries = st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%/?[]|^`{}\"<>",
                         max_size=80)


@given(st.builds(protocol.HttpRequest, request_id=st.uuids().map(str), method=st.sampled_from(["GET", "PROPFIND"]),
                 uri=queries, headers=headers_st, body=st.binary(max_size=300).map(protocol.b64encode),
                 timestamp=st.integers(min_value=0, max_value=2**53), body_size=st.none() | st.integers(0, 10**8)))
def test_http_request_round_trips(msg):
    assert protocol.decode(protocol.encode(msg)) == msg


@given(st.builds(protocol.HttpResponse, request_id=st.text(max_size=40), status_code=st.integers(100, 599),
                 headers=headers_st, body=st.binary(max_size=300).map(protocol.b64encode),
                 processing_time_ms=st.integers(0, 10**6), body_uploaded=st.booleans()))
def test_http_response_round_trips(msg):
    assert protocol.decode(protocol.encode(msg)) == msg


@given(st.binary(max_size=2000))
def test_b64_round_trip(raw):
    assert protocol.b64decode(protocol.b64encode(raw)) == raw


content_types = st.sampled_from(["text/plain", "text/html; charset=utf-8", "application/json", "image/png",
                                 "application/octet-stream", "", "application/vnd.api+json"])


@given(st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
       content_types)
def test_lambda_result_body_is_byte_exact(body, content_type):
    result = events.http_response(200, {"content-type": [content_type]}, body)
    got = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode("utf-8")
    assert got == body


@given(st.lists(header_values.filter(lambda v: "," not in v), min_size=1, max_size=5),
       st.lists(st.text(alphabet=string.ascii_letters + "=; /", min_size=1, max_size=30), max_size=5))
def test_set_cookies_stay_separate_and_other_repeats_join(values, cookies):
    headers = {"X-Rep": values, "Set-Cookie": cookies} if cookies else {"X-Rep": values}
    result = events.http_response(200, headers, b"")
    assert result.get("cookies", []) == cookies
    assert result["headers"]["X-Rep"].split(", ") == values


@given(st.binary(max_size=3000), queries)
def test_event_body_and_query_parse_exactly(body, query):
    event = http_event("abcdefghij12", method="POST", body=body, query=query)
    req = events.parse_http_event(event)
    assert req.body == body and req.raw_query == query


@given(tunnel_ids, paths)
def test_path_mode_routing_strips_exactly_the_prefix(tid, path):
    route = routing.resolve("api.example.org", f"/{tid}{path}", "t.example.com")
    assert route is not None and route.tunnel_id == tid and route.prefix == "/" + tid
    assert route.path == path or (path == "/" and route.path == "/")
    assert route.prefix + route.path in (f"/{tid}{path}", f"/{tid}/")


@given(tunnel_ids, paths, st.sampled_from(["", ":443", ":8080", "."]))
def test_subdomain_routing_keeps_the_path(tid, path, suffix):
    route = routing.resolve(f"{tid.upper()}.T.example.com{suffix}" if suffix != "." else f"{tid}.t.example.com.",
                            path, "t.example.com")
    assert route == routing.Route(tunnel_id=tid, mode=routing.SUBDOMAIN, path=path, prefix="")


@given(st.text(max_size=40))
def test_routing_never_crashes_and_only_returns_valid_ids(path):
    route = routing.resolve("x.example.org", path, "")
    assert route is None or routing.is_routable(route.tunnel_id)


def test_new_tunnel_ids_are_uniformish():
    seen = [routing.new_tunnel_id() for _ in range(2000)]
    assert len(set(seen)) == 2000 and all(routing.is_tunnel_id(s) for s in seen)
    counts = {c: 0 for c in string.ascii_lowercase + string.digits}
    for s in seen:
        for c in s:
            counts[c] += 1
    expected = 2000 * 12 / 36
    assert all(0.7 * expected < n < 1.3 * expected for n in counts.values())


@given(st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=40))
def test_names_and_generated_ids_never_overlap(value):
    """Both live under reservation#<x> and route by tunnelId: no string may be both a name and an id."""
    assert not (routing.is_valid_name(value) and routing.is_tunnel_id(value))


@given(tunnel_ids)
def test_nothing_shaped_like_a_generated_id_is_a_requestable_name(value):
    assert routing.is_tunnel_id(value) and not routing.is_valid_name(value)


prefixes = tunnel_ids.map(lambda t: "/" + t)
texty = st.text(alphabet=string.printable + "é", max_size=300)


@given(texty, st.sampled_from(["text/html", "text/css", "application/json"]), prefixes)
def test_rewrite_is_idempotent(text, ctype, prefix):
    once = rewrite.rewrite_body(text.encode(), ctype, "", prefix)
    assert rewrite.rewrite_body(once, ctype, "", prefix) == once


@given(st.binary(max_size=500), st.sampled_from(["text/html", "text/css", "application/json", "image/png"]),
       prefixes, st.sampled_from(["gzip", "br", "deflate"]))
def test_compressed_bodies_untouched(body, ctype, prefix, encoding):
    assert rewrite.rewrite_body(body, ctype, encoding, prefix) == body


@given(texty, st.sampled_from(["text/html", "text/css", "application/json", "text/plain", "image/svg+xml"]))
def test_no_prefix_means_no_change(text, ctype):
    assert rewrite.rewrite_body(text.encode(), ctype, "", "") == text.encode()


@given(st.text(alphabet=string.ascii_letters + string.digits + "-._~/?=&", max_size=40), prefixes)
def test_html_links_get_exactly_the_prefix(path, prefix):
    link = "/" + path.lstrip("/")
    html = f'<a href="{link}">x</a><img src=\'{link}\'>'.encode()
    out = rewrite.rewrite_body(html, "text/html", "", prefix).decode()
    if link.startswith(prefix + "/") or link == prefix or link.startswith(prefix + "?"):
        assert out == html.decode()
    else:
        assert out == f'<a href="{prefix}{link}">x</a><img src=\'{prefix}{link}\'>'


@given(st.text(alphabet=string.ascii_letters + string.digits + "/", max_size=20), prefixes)
def test_location_and_cookie_path(path, prefix):
    location = "/" + path
    out = rewrite.rewrite_headers({"Location": [location], "Set-Cookie": [f"a=b; Path={location}; Secure"]}, prefix)
    expected = rewrite.prefix_path(location, prefix)
    assert out["Location"] == [expected]
    assert out["Set-Cookie"] == [f"a=b; Path={expected}; Secure"]
    if not location.startswith("//") and not location.startswith(prefix):
        assert expected == prefix + location


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=5000), query=target_queries, response=st.binary(max_size=5000),
       method=st.text(alphabet=string.ascii_uppercase + "-", min_size=1, max_size=10))
def test_forward_end_to_end_is_byte_exact(aws, mgmt, ctx, body, query, response, method):
    tid = connect_agent("conn-P")["tunnel_id"]
    seen: list[bytes] = []

    def reply(msg):
        seen.append(base64.b64decode(msg["body"]))
        return protocol.HttpResponse(request_id=msg["request_id"], status_code=200,
                                     headers={"content-type": ["application/octet-stream"]},
                                     body=protocol.b64encode(response))
    agent = FakeAgent(mgmt, "conn-P", reply)
    result = load_handler("forward")(http_event(tid, path="/p", method=method, body=body, query=query), ctx)
    assert seen == [body]
    assert agent.requests[0]["uri"] == "/p" + ("?" + query if query else "")
    assert agent.requests[0]["method"] == method
    got = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
    assert result["statusCode"] == 200 and got == response


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(alphabet=string.ascii_letters + "/\"\\é ", max_size=12))
json_docs = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) |
                         st.dictionaries(st.text(alphabet=string.ascii_letters + "/\"", max_size=8), inner, max_size=4),
                         max_leaves=20)


def _expected(doc, prefix):
    if isinstance(doc, str):
        return rewrite.prefix_path(doc, prefix)
    if isinstance(doc, list):
        return [_expected(d, prefix) for d in doc]
    if isinstance(doc, dict):
        return {k: _expected(v, prefix) for k, v in doc.items()}
    return doc


@given(json_docs, prefixes, st.booleans())
def test_json_values_rewritten_keys_never(doc, prefix, pretty):
    import json
    text = json.dumps(doc, indent=2 if pretty else None, ensure_ascii=False)
    out = rewrite.rewrite_body(text.encode(), "application/json", "", prefix, json=True)
    assert json.loads(out) == _expected(doc, prefix)
    # without --rewrite-json a JSON body is data: every byte unchanged
    assert rewrite.rewrite_body(text.encode(), "application/json", "", prefix) == text.encode()
