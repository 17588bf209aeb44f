"""caller_ws: caller WebSockets (issue 24) - the caller API's $connect, $default and $disconnect, and
the agent's ws frames the response Lambda hands over (shared/README.md "Caller WebSockets").

A caller socket is a row ``ws#<caller connection id>`` in the connections table (no ``tunnelId``:
never in the GSI) naming the agent connection that serves it. That row does three jobs, one call
each: ``next_in_seq`` numbers a caller frame and finds the agent (caller -> app), ``claim_out_seq``
proves an agent owns the socket and orders its messages (app -> caller, stop-and-wait), and
``delete_socket`` ends it once (whoever closes first tells the other side).

The handshake is the HTTP story's: route, the tunnel's connection (``tunnels``), the edge policy
(``gate.edge_policy``), the post (``tunnels.post``, a verifiable request id per connection) and the
wait for the answer row (``waiting``), which the response Lambda writes from ``ws_opened`` /
``ws_refused`` (``open_answer``).

With CloudFront in front (a domain on the ``function_url`` edge), a handshake on the tunnel's own
hostname reaches the caller API through the distribution's viewer-request function, which puts
the viewer's Host, address and request target in headers (``x-tunnel-host``,
``x-tunnel-viewer-address``, ``TARGET_HEADER``). They are believed only with the secret origin
header CloudFront adds (``httptunnel.edge_origin``): ``through_cloudfront``. A caller on the caller
API's own name (``sockets.<domain>``) is routed as before, its copies of those headers ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from botocore.exceptions import ClientError

from . import aws, config, edge_origin, events, fairness, gate, limits, log, management, names, policy, protocol
from . import routing, store
from . import to_agent, tunnels, waiting
from .replies import GONE, NOT_FOUND, PUBLIC_MESSAGES, TIMEOUT, ForwardResult

CALLER_OPEN_WAIT_S = 20.0  # $connect waits this long for the agent (API Gateway's integration limit: 29 s)
APP_FIRST_POST_S = 3.0  # a post to a caller whose $connect has not returned yet is retried this long
TUNNEL_QUERY = "tunnel"  # the query form: ?tunnel=<id>
# The app's request target (path and query as the viewer sent them), set by the CloudFront Function
# (terraform/modules/cloudfront/viewer_request.js) on a handshake it sends to the caller API
TARGET_HEADER = "x-tunnel-target"
CLOUDFRONT_HEADERS = (*edge_origin.EDGE_HEADERS, TARGET_HEADER)
NO_WS = ("this tunnel's agent does not pass WebSockets: upgrade ttf (it must announce the `ws` capability) "
         "and reconnect")
# Handshake headers that belong to the caller's connection with API Gateway, not to the app's socket.
HANDSHAKE_ONLY = ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions")
# 1005 (no code), 1006 (dropped) and 1015 (TLS) are never sent on the wire (RFC 6455 7.4.1).
RESERVED_CLOSE_CODES = frozenset({1005, 1006, 1015})
WEBHOOK_ONLY = ("this tunnel's edge policy passes only signed webhooks (ttf --verify-webhook): a WebSocket handshake "
                "has no body to sign, so caller sockets are refused")
# The caller frames queue (terraform/caller_queue.tf): the message attribute naming the caller's socket
FRAME_SOCKET_ATTRIBUTE = "connectionId"
# The texts of one ws_message to the agent (room for its envelope under the 128 KB post)
WS_BATCH_MAX = limits.WS_MESSAGE_MAX - 1024


# --------------------------------------------------------------------------- the socket row

@dataclass(frozen=True)
class Socket:
    socket_id: str  # the caller's connection id
    agent_connection: str
    tunnel_id: str
    agent_domain: str = ""
    agent_stage: str = ""
    caller_domain: str = ""
    caller_stage: str = ""
    in_seq: int = 0  # caller frames numbered so far
    out_seq: int = -1  # the last agent ws_message posted to the caller


def _key(socket_id: str) -> dict[str, Any]:
    return {names.CONN_PK: {"S": names.SOCKET_PREFIX + socket_id}}


def _socket_from(item: dict[str, Any]) -> Socket:
    row = store._plain(item)
    return Socket(socket_id=str(row[names.CONN_PK])[len(names.SOCKET_PREFIX):],
                  agent_connection=str(row.get("agentConnection", "")), tunnel_id=str(row.get("socketTunnel", "")),
                  agent_domain=str(row.get("agentDomain", "")), agent_stage=str(row.get("agentStage", "")),
                  caller_domain=str(row.get("callerDomain", "")), caller_stage=str(row.get("callerStage", "")),
                  in_seq=int(row.get("inSeq", 0)), out_seq=int(row.get("outSeq", -1)))


def put_socket(sock: Socket) -> None:
    now_s = int(time.time())
    store._call("put_item", TableName=config.connections_table(), Item=store._item({
        names.CONN_PK: names.SOCKET_PREFIX + sock.socket_id, "agentConnection": sock.agent_connection,
        "socketTunnel": sock.tunnel_id, "agentDomain": sock.agent_domain, "agentStage": sock.agent_stage,
        "callerDomain": sock.caller_domain, "callerStage": sock.caller_stage, "inSeq": 0, "outSeq": -1,
        "connectedAt": now_s * 1000, names.TTL_ATTRIBUTE: now_s + store.CONNECTION_TTL_S}))


def next_in_seq(socket_id: str) -> tuple[Socket, int] | None:
    """Number one caller frame (``ADD inSeq 1``) and read the row, in one call; None: no such socket."""
    try:
        out = store._call("update_item", TableName=config.connections_table(), Key=_key(socket_id),
                          UpdateExpression="ADD inSeq :one", ConditionExpression="attribute_exists(#pk)",
                          ExpressionAttributeNames={"#pk": names.CONN_PK},
                          ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
    except ClientError as exc:
        if aws.is_conditional_failure(exc):
            return None
        raise
    sock = _socket_from(out["Attributes"])
    return sock, sock.in_seq - 1


DUPLICATE = "duplicate"
IN_PROGRESS = "in_progress"
OUT_OF_ORDER = "out_of_order"
CLAIM_STALE_S = 20  # a claim whose posts never finished (the invocation died) may be taken again after this


def claim_out_seq(socket_id: str, agent_connection: str, seq: int) -> Socket | str | None:
    """Agent message ``seq`` may be posted now: the socket, when this agent connection owns it, ``seq``
    follows the last one posted, and no other invocation is posting it (one conditional UpdateItem:
    ``claimedSeq``). DUPLICATE for a number already posted, IN_PROGRESS while another invocation posts
    it, OUT_OF_ORDER for one ahead, None when the socket is gone or not this connection's. The poster
    calls ``posted`` when done: only then is the number acknowledged, so the agent's next message
    can never overtake it."""
    now = int(time.time())
    try:
        out = store._call("update_item", TableName=config.connections_table(), Key=_key(socket_id),
                          UpdateExpression="SET claimedSeq = :seq, claimedAt = :now",
                          ConditionExpression="agentConnection = :me AND outSeq = :prev AND "
                                              "(attribute_not_exists(claimedSeq) OR claimedSeq = :prev OR "
                                              "(claimedSeq = :seq AND claimedAt < :stale))",
                          ExpressionAttributeValues={":seq": {"N": str(seq)}, ":prev": {"N": str(seq - 1)},
                                                     ":me": {"S": agent_connection}, ":now": {"N": str(now)},
                                                     ":stale": {"N": str(now - CLAIM_STALE_S)}},
                          ReturnValues="ALL_NEW")
        return _socket_from(out["Attributes"])
    except ClientError as exc:
        if not aws.is_conditional_failure(exc):
            raise
    found = get_socket(socket_id)
    if found is None or found.agent_connection != agent_connection:
        return None
    if seq <= found.out_seq:
        return DUPLICATE
    return IN_PROGRESS if seq == found.out_seq + 1 else OUT_OF_ORDER


def posted(socket_id: str, seq: int) -> None:
    """Every text of agent message ``seq`` reached the caller (``outSeq``): the next may be claimed."""
    try:
        store._call("update_item", TableName=config.connections_table(), Key=_key(socket_id),
                    UpdateExpression="SET outSeq = :seq", ConditionExpression="attribute_exists(#pk)",
                    ExpressionAttributeNames={"#pk": names.CONN_PK},
                    ExpressionAttributeValues={":seq": {"N": str(seq)}})
    except ClientError as exc:
        if not aws.is_conditional_failure(exc):  # the socket ended meanwhile: nothing to record
            raise


def get_socket(socket_id: str) -> Socket | None:
    out = store._call("get_item", TableName=config.connections_table(), Key=_key(socket_id), ConsistentRead=True)
    return _socket_from(out["Item"]) if out.get("Item") else None


def delete_socket(socket_id: str, owner: str | None = None) -> Socket | None:
    """Delete the row (only ``owner``'s, when given) and return what it held; None when there was none."""
    extra: dict[str, Any] = {}
    if owner is not None:
        extra = dict(ConditionExpression="agentConnection = :me", ExpressionAttributeValues={":me": {"S": owner}})
    try:
        out = store._call("delete_item", TableName=config.connections_table(), Key=_key(socket_id),
                          ReturnValues="ALL_OLD", **extra)
    except ClientError as exc:
        if aws.is_conditional_failure(exc):
            return None
        raise
    return _socket_from(out["Attributes"]) if out.get("Attributes") else None


# --------------------------------------------------------------------------- endpoints and posts

def caller_endpoint(sock: Socket) -> str:
    """The caller API's @connections: configured, else API Gateway's callback URL of the caller's connection."""
    configured = config.caller_management_endpoint()
    if configured:
        return configured
    return f"https://{sock.caller_domain}/{sock.caller_stage}" if sock.caller_stage else f"https://{sock.caller_domain}"


def agent_endpoint(sock: Socket) -> str:
    return management.management_endpoint(sock.agent_domain, sock.agent_stage)


def _tell_agent(sock: Socket, message: protocol.Message) -> None:
    """Best effort: a gone agent has nothing left to tell."""
    try:
        management.post_to_connection(sock.agent_connection, protocol.encode(message), agent_endpoint(sock))
    except (management.Gone, ClientError) as exc:
        log.info("not delivered to the agent", connection_id=sock.agent_connection, socket_id=sock.socket_id,
                 type=message.type, error=type(exc).__name__)


def _end_caller(sock: Socket) -> None:
    """Close the caller's socket (it sees 1000, whatever the reason: AWS's DeleteConnection)."""
    try:
        management.close_connection(sock.socket_id, caller_endpoint(sock))
    except ClientError as exc:
        log.warning("caller socket not closed", socket_id=sock.socket_id, error=type(exc).__name__)


# --------------------------------------------------------------------------- $connect

def _refusal(status: int, code: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {names.ERROR_HEADER: code, "content-type": "text/plain; charset=utf-8"},
            "body": message + "\n"}


def _from_forward(result: ForwardResult) -> dict[str, Any]:
    """A refusal the HTTP stages made (the edge policy's 401/403/429), as a $connect answer."""
    out = {"statusCode": result.status, "headers": dict(result.result.get("headers") or {})}
    if result.result.get("body"):
        out["body"] = result.result["body"]
    return out


def _multi(event: dict[str, Any], name: str) -> dict[str, list[str]]:
    raw = event.get(name) or {}
    return {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in raw.items()} \
        if isinstance(raw, dict) else {}


def caller_route(ws: events.WsEvent, query: dict[str, list[str]]) -> routing.Route | None:
    """The tunnel: ``<id>.<CALLER_WS_DOMAIN>`` (the event's domainName), else ``?tunnel=<id>`` while
    path routing is on."""
    domain, host = config.caller_ws_domain(), ws.domain_name.lower().rstrip(".")
    if domain and host.endswith("." + domain):
        label = host[:-len(domain) - 1]
        if routing.is_routable(label):
            return routing.Route(tunnel_id=label, mode=routing.SUBDOMAIN, path="/", prefix="")
    asked = (query.get(TUNNEL_QUERY) or [""])[-1]
    if config.path_routing() and routing.is_routable(asked):
        return routing.Route(tunnel_id=asked, mode=routing.PATH, path="/", prefix="")
    return None


def through_cloudfront(ws: events.WsEvent) -> tuple[events.WsEvent, routing.Route, str] | dict[str, Any] | None:
    """A handshake CloudFront passed on from a tunnel's hostname: the handshake as the viewer made it
    (its Host, address and headers: ``edge_origin.viewer_headers``), its route (``<id>.<domain>``, or
    ``/<id>/...`` while path routing is on) and the app's target (``TARGET_HEADER``, kept byte for
    byte: ``routing.encoded_request_target``); or the refusal (404 no tunnel, 400 a target that
    cannot be sent on, 502 CloudFront's headers missing). None when the secret origin header is not
    there or does not match (no CloudFront configured, or a caller on the caller API's own name):
    the event is then routed as it is, and nothing the caller sent under these names is believed.
    The secret is read only when a handshake carries the header."""
    sent = ws.headers.get(edge_origin.SECRET_HEADER, "")
    if not sent or not edge_origin.fronted() or not edge_origin.secret_matches(sent):
        return None
    host = ws.headers.get(edge_origin.HOST_HEADER, "").strip().lower()
    ip = edge_origin.viewer_ip(ws.headers)
    target = ws.headers.get(TARGET_HEADER, "")
    if not host or not ip or not target.startswith("/"):
        log.warning("CloudFront handshake without its host, address or target", socket_id=ws.connection_id)
        return _refusal(502, "internal_error", "the edge did not say which host, address and path were called")
    path, _, raw_query = target.partition("?")
    route = routing.resolve(host, path, config.caller_ws_domain())
    if route is None or (route.mode == routing.PATH and not config.path_routing()):
        return _refusal(404, "tunnel_not_found", NOT_FOUND)
    try:
        app = routing.encoded_request_target(route.path, raw_query)
    except ValueError:
        return _refusal(400, "invalid_request", "the socket's path cannot be forwarded as a valid URL")
    headers = {k: v for k, v in edge_origin.viewer_headers(ws.headers, host, ip).items() if k != TARGET_HEADER}
    return dataclasses.replace(ws, headers=headers, domain_name=host, source_ip=ip), route, app


def app_target(query: dict[str, list[str]]) -> str:
    """``/`` and the caller's query without ``tunnel`` (rebuilt from the parsed parameters: the event
    has no raw query, so the app gets an equivalent, not byte-identical, query)."""
    pairs = [(k, v) for k, values in query.items() if k != TUNNEL_QUERY for v in values]
    return "/" + ("?" + urlencode(pairs, quote_via=quote, safe="") if pairs else "")


def handshake_request(ws: events.WsEvent, target: str) -> events.HttpEvent:
    """The handshake as the HTTP stages see a request (the edge policy and the proxy headers use it)."""
    raw_path, _, raw_query = target.partition("?")
    return events.HttpEvent(method="GET", raw_path=raw_path, raw_query=raw_query, headers=dict(ws.headers), cookies=(),
                            body=b"", source_ip=ws.source_ip, domain_name=ws.domain_name, request_id=ws.request_id)


def app_headers(req: events.HttpEvent, route: routing.Route, rules: policy.Policy | None) -> protocol.Headers:
    headers = {k: v for k, v in to_agent.agent_headers(req, route).items() if k not in HANDSHAKE_ONLY}
    return to_agent.policy_headers(headers, rules)


def webhook_only(conn: store.Connection) -> bool:
    """The tunnel's edge policy verifies webhook signatures (``--verify-webhook``), so it passes only
    signed webhooks: a WebSocket handshake has no body to sign, and webhook senders (Stripe, GitHub,
    Twilio) never open WebSockets. Known without a KMS Decrypt: sealed secrets (``sealedHooks``) or
    hooks in the stored policy (no key configured: the layer without Terraform)."""
    if conn.sealed_hooks is not None:
        return True
    try:
        return bool(conn.policy) and bool(gate.parsed_policy(str(conn.policy)).hooks)
    except policy.PolicyError:
        return False  # unreadable: gate.edge_policy answers 502 for it


def _webhook_refusal(tunnel_id: str, ws: events.WsEvent) -> dict[str, Any]:
    log.info("caller socket refused: the tunnel passes only signed webhooks", socket_id=ws.connection_id,
             tunnel_id=tunnel_id, source_ip=ws.source_ip)
    return _refusal(403, policy.WEBHOOK_INVALID, WEBHOOK_ONLY)


def connect(event: Any, remaining_ms: int | None = None) -> dict[str, Any]:
    """caller_connect: route, the tunnel's fairness ceilings (``gate.admit``: the handshake counts
    as one request to the tunnel, and is in flight until the agent answered), policy, ``ws``
    agreed, the socket row, ``ws_open``, wait for the agent (``CALLER_OPEN_WAIT_S``, shortened to
    leave the invocation time to answer: ``waiting.wait_seconds``)."""
    ws = events.parse_ws_event(event)
    edge = through_cloudfront(ws)
    if isinstance(edge, dict):
        return edge
    if edge is not None:
        viewer, route, target = edge
    else:
        query = _multi(event, "multiValueQueryStringParameters") or {k: [v] for k, v in ws.query.items()}
        found = caller_route(ws, query)
        if found is None:
            return _refusal(404, "tunnel_not_found", NOT_FOUND)
        route, target = found, app_target(query)
        viewer = ws
        if edge_origin.fronted():  # CloudFront's names, sent by a caller on the API's own name: never the app's
            viewer = dataclasses.replace(ws, headers={k: v for k, v in ws.headers.items() if k not in CLOUDFRONT_HEADERS})
    refused = gate.admit(route.tunnel_id)  # before any read, as forward does
    if refused is not None:
        log.info("caller socket refused: the tunnel is over its limits", socket_id=ws.connection_id,
                 tunnel_id=route.tunnel_id, source_ip=viewer.source_ip)
        return _from_forward(refused)
    try:
        return _connect(ws, viewer, route, target, remaining_ms)
    finally:
        gate.release(route.tunnel_id)


def _connect(ws: events.WsEvent, viewer: events.WsEvent, route: routing.Route, target: str,
             remaining_ms: int | None) -> dict[str, Any]:
    """``ws``: the caller API's event (its connection, domain and stage: the socket row); ``viewer``:
    the handshake as the caller made it (through CloudFront: its host, address and headers)."""
    conn = tunnels.connection_for(route.tunnel_id, open_secrets=False)
    if conn is None:
        return _refusal(404, "tunnel_not_found", NOT_FOUND)
    if webhook_only(conn):  # before the edge policy: its webhook secrets are never opened here
        return _webhook_refusal(route.tunnel_id, viewer)
    req = handshake_request(viewer, target)
    rules = gate.edge_policy(req, target, conn)
    if isinstance(rules, ForwardResult):
        return _from_forward(rules)
    if protocol.CAP_WS not in conn.capabilities:
        return _refusal(501, "websocket_unsupported", NO_WS)
    deadline = time.monotonic() + waiting.wait_seconds(CALLER_OPEN_WAIT_S, remaining_ms)
    ids: dict[str, str] = {}
    headers = app_headers(req, route, rules)

    def frame_for(c: store.Connection) -> str:
        ids[c.connection_id] = request_id = to_agent.new_request_id(c.connection_id)
        put_socket(Socket(ws.connection_id, c.connection_id, route.tunnel_id, c.domain_name, c.stage,
                          ws.domain_name, ws.stage))
        return protocol.encode(protocol.WsOpen(request_id=request_id, socket_id=ws.connection_id, uri=target,
                                               headers=headers,
                                               time_left_ms=max(0, int((deadline - time.monotonic()) * 1000))))
    posted = tunnels.post(route, conn, frame_for, open_secrets=False)
    if isinstance(posted, tunnels.Unsent) and webhook_only(posted.fresh):
        delete_socket(ws.connection_id)
        return _webhook_refusal(route.tunnel_id, viewer)
    if posted is None or isinstance(posted, tunnels.Unsent):
        delete_socket(ws.connection_id)
        return _refusal(502, GONE, "the tunnel's agent is gone")
    request_id = ids[posted.connection_id]
    answer = waiting.wait_for_answer(request_id, posted.connection_id, deadline)
    if isinstance(answer, str):
        context = store.RequestContext(tunnel_id=route.tunnel_id, method="GET", path="/", request_bytes=0,
                                       created_at=int(time.time() * 1000))
        late = waiting.give_up(request_id, posted.connection_id, answer, "no answer to ws_open", context)
        if late is None:
            sock = delete_socket(ws.connection_id)
            if sock is not None:
                _tell_agent(sock, protocol.WsClose(ws.connection_id, 1001, "the caller's handshake timed out"))
            status = 504 if answer == TIMEOUT else 502
            return _refusal(status, answer, PUBLIC_MESSAGES.get(answer, "the tunnel's agent is gone"))
        answer = late
    return _opened(ws, route, answer)


def _opened(ws: events.WsEvent, route: routing.Route, answer: store.Answer) -> dict[str, Any]:
    headers = json.loads(answer.headers_json or "{}") if answer.status == names.STATUS_COMPLETED else {}
    if answer.status == names.STATUS_COMPLETED and answer.status_code == 101:
        log.info("caller socket open", socket_id=ws.connection_id, tunnel_id=route.tunnel_id)
        chosen = (headers.get("sec-websocket-protocol") or [""])[0]
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": chosen}} if chosen else {"statusCode": 200}
    delete_socket(ws.connection_id)
    if answer.status == names.STATUS_COMPLETED:
        code = (headers.get(names.ERROR_HEADER) or ["local_service_error"])[0]
        status = answer.status_code
    else:
        code = answer.error_code or "internal_error"
        status = protocol.ERROR_STATUS.get(code, 502)
    log.info("caller socket refused", socket_id=ws.connection_id, tunnel_id=route.tunnel_id, status=status, code=code)
    return _refusal(status, code, PUBLIC_MESSAGES.get(code, "the tunnel's local service refused the WebSocket"))


def open_answer(msg: protocol.WsOpened | protocol.WsRefused) -> store.Answer:
    """The answer row the response Lambda stores for the agent's answer to ``ws_open``."""
    if isinstance(msg, protocol.WsOpened):
        chosen = {"sec-websocket-protocol": [msg.protocol]} if msg.protocol else {}
        return store.Answer(status=names.STATUS_COMPLETED, status_code=101, headers_json=json.dumps(chosen))
    code = msg.code if msg.code in names.ERROR_CODES else "local_service_error"
    status = msg.status if 400 <= msg.status <= 599 else 502
    return store.Answer(status=names.STATUS_COMPLETED, status_code=status,
                        headers_json=json.dumps({names.ERROR_HEADER: [code]}))


# --------------------------------------------------------------------------- $default, $disconnect

@dataclass(frozen=True)
class Frame:
    """One caller frame as the queue hands it over: the SQS message's id, its socket, its text."""
    message_id: str
    socket_id: str
    text: str


def frames_of(event: Any) -> list[Frame]:
    """The SQS batch's caller frames, in the queue's order (one socket's frames are in the order API
    Gateway sent them). A record without a connection id or a readable body can never be delivered: logged and left out
    (so it is deleted, not retried); an event that is not an SQS batch is ``events.BadEvent``."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise events.BadEvent("not an SQS batch: no Records list")
    frames = []
    for record in records:
        message_id = record.get("messageId") if isinstance(record, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise events.BadEvent("an SQS record without a messageId")
        attribute = (record.get("messageAttributes") or {}).get(FRAME_SOCKET_ATTRIBUTE) or {}
        socket_id = attribute.get("stringValue") or (record.get("attributes") or {}).get("MessageGroupId")
        text = _frame_text(record.get("body"))
        if not isinstance(socket_id, str) or not socket_id or text is None:
            log.warning("caller frame without a connection id or a base64 UTF-8 body: dropped", message_id=message_id)
            continue
        frames.append(Frame(message_id, socket_id, text))
    return frames


def _frame_text(body: Any) -> str | None:
    """The frame's text: the queue holds it base64 (SQS refuses NUL, other controls and U+FFFE/U+FFFF in
    a body; terraform/caller_queue.tf); None when it is not base64 of UTF-8."""
    if not isinstance(body, str):
        return None
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _packs(frames: list[Frame]) -> list[list[Frame]]:
    """One socket's frames in ws_message-sized runs (in order; a frame too big on its own is a run of one)."""
    packs: list[list[Frame]] = []
    size = 0
    for frame in frames:
        cost = len(json.dumps(frame.text).encode("utf-8")) + 1
        if packs and size + cost <= WS_BATCH_MAX:
            packs[-1].append(frame)
            size += cost
        else:
            packs.append([frame])
            size = cost
    return packs


def message(event: Any) -> dict[str, Any]:
    """caller_message: a batch from the caller frames FIFO queue (one group = one caller socket, its
    frames in order). Each socket's frames go to the agent as few ``ws_message``s as fit, each numbered
    by the socket row's counter; a gone agent ends the caller's socket. A frame that could not be sent
    is reported with every later frame of its socket (``batchItemFailures``), so the queue gives them
    back in order and the frames already sent are not sent again."""
    failed: list[str] = []
    by_socket: dict[str, list[Frame]] = {}
    for frame in frames_of(event):
        by_socket.setdefault(frame.socket_id, []).append(frame)
    for socket_id, frames in by_socket.items():
        done = 0
        try:
            for pack in _packs(frames):
                if not _send_pack(socket_id, pack):
                    break  # the socket ended: its later frames have nobody to reach
                done += len(pack)
        except Exception as exc:  # noqa: BLE001 - this socket's rest is retried, the other sockets' frames stand
            log.warning("caller frames not sent: retried", socket_id=socket_id, error=type(exc).__name__,
                        detail=str(exc)[:300], frames=len(frames) - done)
            failed.extend(f.message_id for f in frames[done:])
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


def every_frame_failed(event: Any) -> dict[str, Any]:
    """The handler's answer when the batch could not be handled: every record back to the queue."""
    records = event.get("Records") if isinstance(event, dict) else None
    ids = [r.get("messageId") for r in records if isinstance(r, dict)] if isinstance(records, list) else []
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids if isinstance(i, str) and i]}


def _send_pack(socket_id: str, pack: list[Frame]) -> bool:
    """Number one run of a socket's frames and post it to the agent; False when the socket has ended."""
    numbered = next_in_seq(socket_id)
    if numbered is None:
        log.info("caller frames for a socket without a row: dropped", socket_id=socket_id, frames=len(pack))
        return False
    sock, seq = numbered
    if any(over_message_budget(sock) for _ in pack):  # the tunnel's budget counts frames, not ws_messages
        return False
    frame = protocol.encode(protocol.WsMessage(socket_id=sock.socket_id, seq=seq, data=[f.text for f in pack]))
    if len(frame.encode("utf-8")) > limits.WS_MESSAGE_MAX:
        log.warning("caller message too big for the agent: socket ended", socket_id=sock.socket_id,
                    bytes=len(frame.encode("utf-8")))
        _close_both(sock, 1009, "message too big for the tunnel")
        return False
    try:
        management.post_to_connection(sock.agent_connection, frame, agent_endpoint(sock))
    except management.Gone:
        log.info("the agent of a caller socket is gone: socket ended", socket_id=sock.socket_id,
                 connection_id=sock.agent_connection)
        if delete_socket(sock.socket_id) is not None:
            _end_caller(sock)
        return False
    return True


def over_message_budget(sock: Socket) -> bool:
    """The tunnel's caller message budget (``fairness.caller_message_flooding``, issue 29): True when
    this frame goes over it. The frame is dropped and the socket that sent it closed both ways: the
    app gets 1008 (policy violation) with the reason, the caller 1000 (DeleteConnection: the only
    code a server-side close can give). Closed rather than frames dropped silently: an app protocol
    missing a frame is broken, a closed socket is reconnected (within the tunnel's ``$connect``
    limits) by every WebSocket client."""
    if not fairness.caller_message_flooding(sock.tunnel_id):
        return False
    log.warning("caller message over its tunnel's budget: socket closed", socket_id=sock.socket_id,
                tunnel_id=sock.tunnel_id)
    _close_both(sock, 1008, "the tunnel's caller message budget is spent")
    return True


def _close_both(sock: Socket, code: int, reason: str) -> None:
    if delete_socket(sock.socket_id) is not None:
        _tell_agent(sock, protocol.WsClose(sock.socket_id, code, reason))
        _end_caller(sock)


def disconnect(event: Any) -> dict[str, Any]:
    """caller_disconnect: the caller's close code and reason to the agent (nothing when the agent closed first)."""
    ws = events.parse_ws_event(event)
    ctx = event.get("requestContext") or {}
    code = ctx.get("disconnectStatusCode")
    reason = ctx.get("disconnectReason")
    sock = delete_socket(ws.connection_id)
    if sock is not None:
        _tell_agent(sock, protocol.WsClose(ws.connection_id, code if isinstance(code, int) else 1005,
                                           str(reason or "")[:123]))
    log.info("caller socket closed", socket_id=ws.connection_id, code=code, told_agent=sock is not None)
    return events.ws_response(200)


# --------------------------------------------------------------------------- agent frames (response Lambda)

def on_agent_message(ws: events.WsEvent, msg: protocol.WsMessage | protocol.WsClose) -> str:
    """An agent's ``ws_message`` (posted to the caller in order, then ``ws_ack``) or ``ws_close``."""
    if isinstance(msg, protocol.WsClose):
        sock = delete_socket(msg.socket_id, owner=ws.connection_id)
        if sock is None:
            return "unknown_socket"
        _end_caller(sock)
        return "closed"
    claimed = claim_out_seq(msg.socket_id, ws.connection_id, msg.seq)
    agent_at = management.management_endpoint(ws.domain_name, ws.stage)
    if claimed is None:
        _post_agent(ws.connection_id, protocol.WsClose(msg.socket_id, 1001, "no such caller socket"), agent_at)
        return "unknown_socket"
    if claimed == DUPLICATE:
        _post_agent(ws.connection_id, protocol.WsAck(msg.socket_id, msg.seq), agent_at)
        return DUPLICATE
    if isinstance(claimed, str):
        return claimed  # being posted by another invocation (it acks), or ahead: the agent resends it later
    for text in msg.data:
        try:
            management.post_with_retry(claimed.socket_id, text, caller_endpoint(claimed), budget_s=APP_FIRST_POST_S)
        except management.Gone:
            if delete_socket(claimed.socket_id) is not None:
                _post_agent(ws.connection_id, protocol.WsClose(msg.socket_id, 1001, "the caller is gone"), agent_at)
            return "caller_gone"
    posted(claimed.socket_id, msg.seq)
    _post_agent(ws.connection_id, protocol.WsAck(msg.socket_id, msg.seq), agent_at)
    return "posted"


def _post_agent(connection_id: str, message: protocol.Message, endpoint: str) -> None:
    try:
        management.post_to_connection(connection_id, protocol.encode(message), endpoint)
    except management.Gone:
        log.info("agent gone before its ws frame was answered", connection_id=connection_id, type=message.type)
