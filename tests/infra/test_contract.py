"""The contract between the handlers and the infrastructure, derived from both sides.

Infrastructure side: terraform/ applied to a moto server (emulator.mock_aws.terraform.apply_local); each
function's environment and its role's policy are read back from moto.
Code side: every handler runs in this process against that moto server with the environment
Terraform gave it, while a botocore hook records each AWS operation it performs (presigned
URLs included) and an os.environ wrapper records each variable httptunnel.config reads.

Checks: every variable read is set by Terraform for that function (or is a documented
override Terraform must NOT set); every operation is allowed by that function's role; no
allowed action goes unused except the few listed with a reason; table/index/attribute names
match httptunnel.names.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import importlib.util
import json
import time
import os
import re
import sys
import uuid
from collections import defaultdict

import boto3
import pytest

from emulator.mock_aws import terraform as tf_local

from .conftest import ROOT

pytestmark = pytest.mark.infra

BUILD_DIR = ROOT / "build" / "local"
EVENTS = ROOT / "tests" / "events"

# Variables httptunnel.config may read that Terraform deliberately leaves unset on AWS.
NOT_SET_BY_TERRAFORM = {
    "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": "LocalStack/emulator override of the management endpoint",
    "FORWARD_WAIT_SECONDS": "tests only; the default 25 s is what AWS runs",
    "REQUEST_ID_KEY": "tests only; on AWS the key stays in SSM (REQUEST_ID_KEY_SSM_PREFIX), never in the environment",
}
# Allowed actions the handlers never call themselves, and why they are still needed.
NOT_CALLED_BY_HANDLER = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
    "dynamodb:DescribeStream": "the event source mapping reads the stream for stream_notifier",
    "dynamodb:GetRecords": "the event source mapping reads the stream for stream_notifier",
    "dynamodb:GetShardIterator": "the event source mapping reads the stream for stream_notifier",
    "dynamodb:ListStreams": "the event source mapping reads the stream for stream_notifier",
    "sqs:ReceiveMessage": "the event source mapping reads the caller frames queue for caller_message",
    "sqs:DeleteMessage": "the event source mapping deletes the frames caller_message handled",
    "sqs:ChangeMessageVisibility": "the event source mapping returns the frames caller_message reports failed",
    "sqs:GetQueueAttributes": "the event source mapping reads the caller frames queue's settings",
    "s3:ListBucket": "S3 answers a HeadObject of a missing key with 404 only when the caller may list the bucket "
                     "(403 otherwise): bodies.get_response_body tells a missing upload by that 404",
    "kms:Decrypt": "SSM decrypts the SecureStrings under the deployment's key on the reader's behalf (connect's JWT "
                   "secret, response's request-id keys); forward's own Decrypt of sealed webhook secrets is observed",
}
# Allowed actions on code paths this scenario does not reach (moto cannot fail a post with
# GoneException, and no agent answers here); each is cited from the layer's code.
NOT_REACHED = {
    "forward": {"dynamodb:DeleteItem":
                "store.delete_connection when PostToConnection and GET @connections both say the agent is gone",
                "s3:GetObjectVersion":
                "bodies.get_response_body / response_download_url when an agent uploaded its answer"},
    "forward_stream": {"dynamodb:DeleteItem":
                       "store.delete_connection when PostToConnection and GET @connections both say the agent is gone",
                       "s3:GetObjectVersion":
                       "bodies.get_response_body when an agent uploaded its answer",
                       "dynamodb:BatchWriteItem": "store.delete_frames when relay read a streamed answer's frames",
                       "s3:DeleteObjectVersion": "bodies.delete_segment when relay read a streamed answer's segment"},
    "response": {"dynamodb:PutItem": "store.put_answer when the agent answers an http_request"},
    "caller_message": {"dynamodb:DeleteItem": "caller_ws.delete_socket when the agent is gone (410 on the post)"},
}
SERVICE_PREFIX = {"apigatewaymanagementapi": "execute-api"}
OPERATION_ACTION = {("apigatewaymanagementapi", op): "execute-api:ManageConnections"
                    for op in ("PostToConnection", "DeleteConnection", "GetConnection")}


def iam_action(service: str, operation: str, params: dict | None = None) -> str:
    if (service, operation) == ("s3", "CreateBucket"):
        # botocore serialises generate_presigned_post through the CreateBucket model; the form
        # it signs is an object upload (S3 authorises it as PutObject). No handler creates buckets.
        return "s3:PutObject"
    if (service, operation) in (("s3", "GetObject"), ("s3", "HeadObject")):
        # S3 authorises HEAD as GetObject, and a read of one version as GetObjectVersion
        return "s3:GetObjectVersion" if (params or {}).get("VersionId") else "s3:GetObject"
    if (service, operation) == ("s3", "DeleteObject") and (params or {}).get("VersionId"):
        return "s3:DeleteObjectVersion"  # a versioned delete (bodies.delete_segment)
    return OPERATION_ACTION.get((service, operation), f"{SERVICE_PREFIX.get(service, service)}:{operation}")


class RecordingEnviron(dict):
    """os.environ stand-in recording the names httptunnel.config reads."""

    def __init__(self, values: dict[str, str], reads: set[str]):
        super().__init__(values)
        self.reads = reads

    def _note(self, key):
        if sys._getframe(2).f_globals.get("__name__") == "httptunnel.config":
            self.reads.add(key)

    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not (BUILD_DIR / "layer.zip").is_file():
        pytest.skip("build/local/layer.zip missing: run `make build-local` (make test does)")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        outputs = tf_local.apply_local(endpoint, BUILD_DIR, tmp_path_factory.mktemp("tfstate"),
                                       {"name_prefix": "contract"})
        yield endpoint, outputs
    finally:
        server.stop()


def _client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def deployed(stack):
    """short name -> (environment, allowed actions) as Terraform deployed them."""
    endpoint, outputs = stack
    lam, iam = _client("lambda", endpoint), _client("iam", endpoint)
    result = {}
    for short, name in outputs["function_names"].items():
        conf = lam.get_function_configuration(FunctionName=name)
        role = conf["Role"].rsplit("/", 1)[-1]
        actions: set[str] = set()
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            doc = json.loads(doc) if isinstance(doc, str) else doc
            for statement in doc["Statement"]:
                acts = statement["Action"]
                actions.update([acts] if isinstance(acts, str) else acts)
        assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], f"{short}: managed policies"
        result[short] = (conf.get("Environment", {}).get("Variables", {}), actions)
    return result


def _load_handler(short: str):
    path = ROOT / "lambdas" / short / "handler.py"
    spec = importlib.util.spec_from_file_location(f"contract_handler_{short}_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def _event(name: str) -> dict:
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))


class Context:
    function_name = "contract"
    aws_request_id = "contract-request"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


class StreamContext(Context):
    """forward_stream's context (runtime_api.Context): open_stream, and 2 s left to wait
    (waiting.wait_seconds): past waiting.HOLD_AFTER_S, so the unanswered request takes its lease
    (stream_holds' UpdateItem; a quicker end would take none and leave that grant unobserved)."""
    stream = None

    def get_remaining_time_in_millis(self) -> int:
        return 6_000

    def open_stream(self, status_code=200, headers=None, cookies=None):
        class Sink:
            closed = False

            def write(self, data: bytes) -> None:
                pass

            def close(self) -> None:
                self.closed = True
        self.stream = Sink()
        return self.stream


@pytest.fixture(scope="module")
def observed(stack, deployed):
    """Run the handlers through one tunnel's life; short name -> (env reads, IAM actions used)."""
    endpoint, outputs = stack
    from httptunnel import aws as layer_aws
    from httptunnel import id_keys, request_ids

    reads: dict[str, set[str]] = defaultdict(set)
    used: dict[str, set[str]] = defaultdict(set)
    current = {"fn": ""}
    original_client = layer_aws.client

    def record(params, model, **_):
        used[current["fn"]].add(iam_action(model.service_model.service_name, model.name, params))

    def recording_client(*args, **kwargs):
        made = original_client(*args, **kwargs)
        if not getattr(made, "_contract_hooked", False):
            made.meta.events.register("before-parameter-build", record)
            made._contract_hooked = True
        return made

    saved_environ = os.environ
    layer_aws.client = recording_client
    try:
        def run(short: str, event: dict, context: Context | None = None):
            env = {k: v for k, v in saved_environ.items() if not k.startswith("AWS_")}
            env.update(deployed[short][0])
            env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": endpoint,
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "FORWARD_WAIT_SECONDS": "1"})
            layer_aws.reset()
            id_keys.reset()  # each function is its own container: it reads the keys itself
            os.environ = RecordingEnviron(env, reads[short])  # noqa: B003 - records every read; restored below
            current["fn"] = short
            try:
                return _load_handler(short)(event, context or Context())
            finally:
                os.environ = saved_environ  # noqa: B003 - the real environ, put back

        # Auth is on by default: a token minted with the secret Terraform generated into SSM
        # (read here the way `make token` reads it), and the agent's own reclaim token.
        from scripts.deploy.token import AuthSettings, mint, read_secret

        settings = AuthSettings.from_outputs({"agent_auth": {"value": outputs["agent_auth"]}})
        secret = read_secret(AuthSettings(secret_parameter=settings.secret_parameter, region="us-east-1",
                                          endpoint_url=endpoint))
        agent_token = mint(secret, "contract", 600, issuer=settings.issuer, audience=settings.audience)
        connect = _event("connect")
        # with a webhook verifier: connect seals its secret (kms:Encrypt), forward opens it (kms:Decrypt)
        from httptunnel import policy as edge_policy
        hook_secret = "contract-webhook-secret"
        connect["headers"] = {**connect.get("headers", {}), "Authorization": f"Bearer {agent_token}",
                              "X-Tunnel-Reclaim-Token": "r" * 43, "X-Tunnel-Capabilities": "ack,ws",
                              edge_policy.HEADER: edge_policy.to_header(edge_policy.build(hooks=[f"github:{hook_secret}"]))}
        result = run("connect", connect)
        assert result["statusCode"] == 200, result
        ready = _event("default_message")
        run("response", ready)
        # A ping from a socket whose row is gone: response closes it (DELETE @connections).
        orphan_ping = copy.deepcopy(ready)
        orphan_ping["requestContext"]["connectionId"] = "orphan-conn"
        orphan_ping["body"] = '{"type":"ping"}'
        run("response", orphan_ping)
        # An answer for an id nobody issued: response reads the request-id keys (SSM) and refuses it.
        forged = copy.deepcopy(ready)
        forged["body"] = json.dumps({"type": "http_response", "request_id": "1.abc." + "A" * 22 + "." + "A" * 22,
                                     "status_code": 200})
        run("response", forged)
        # A resend (seq, ack) of an answer to an id forward issued to this connection, minted with
        # the key Terraform generated: response checks it is not stored yet (GetItem), stores it
        # and posts the ack.
        response_env = deployed["response"][0]
        slot = int(response_env["REQUEST_ID_KEY_VERSION"]) % 2
        key = _client("ssm", endpoint).get_parameter(Name=f"{response_env['REQUEST_ID_KEY_SSM_PREFIX']}{slot}",
                                                     WithDecryption=True)["Parameter"]["Value"]
        keys = request_ids.Keys(int(response_env["REQUEST_ID_KEY_VERSION"]), {
            int(response_env["REQUEST_ID_KEY_VERSION"]): key.encode()})
        resend = copy.deepcopy(ready)
        resend["body"] = json.dumps({"type": "http_response", "status_code": 200, "seq": 0, "ack": True,
                                     "request_id": request_ids.mint(keys, ready["requestContext"]["connectionId"],
                                                                    int(time.time() * 1000))})
        run("response", resend)
        ddb = _client("dynamodb", endpoint)
        row = ddb.get_item(TableName=outputs["connections_table_name"],
                           Key={"connectionId": {"S": connect["requestContext"]["connectionId"]}})["Item"]
        tunnel_id = row["tunnelId"]["S"]
        assert "sealedHooks" in row and hook_secret not in json.dumps({k: v for k, v in row.items() if k != "sealedHooks"})
        request = _event("http_get")
        request["rawPath"] = f"/{tunnel_id}/hello"
        request["requestContext"]["http"]["path"] = request["rawPath"]
        request["headers"]["x-hub-signature-256"] = "sha256=" + hmac.new(hook_secret.encode(), b"", hashlib.sha256).hexdigest()
        run("forward", request)
        big = _event("http_get")
        big["rawPath"] = f"/{tunnel_id}/upload"
        big["requestContext"]["http"]["path"] = big["rawPath"]
        big["requestContext"]["http"]["method"] = "POST"
        big["body"] = base64.b64encode(os.urandom(200_000)).decode()
        big["isBase64Encoded"] = True
        big["headers"]["x-hub-signature-256"] = "sha256=" + hmac.new(hook_secret.encode(), base64.b64decode(big["body"]),
                                                                     hashlib.sha256).hexdigest()
        run("forward", big)
        # the function URL edge: the same requests, the path as sent, the answer to a stream (its
        # own instance on AWS: nothing remembered from forward's runs in this process)
        from httptunnel import sealed, tunnels
        tunnels.CONNECTIONS.clear()
        sealed.OPENED.clear()
        run("forward_stream", request, StreamContext())
        run("forward_stream", big, StreamContext())
        # Caller WebSockets. This tunnel verifies webhooks: caller_connect refuses its caller
        # sockets at once (403, from the row alone: it has no kms:Decrypt and needs none).
        tunnels.CONNECTIONS.clear()

        def handshake_for(tid: str) -> dict:
            event = _event("connect") | {"queryStringParameters": {"tunnel": tid},
                                         "multiValueQueryStringParameters": {"tunnel": [tid]}}
            event["requestContext"] = event["requestContext"] | {"connectionId": f"caller-of-{tid}"}
            return event
        refused = run("caller_connect", handshake_for(tunnel_id), StreamContext())
        assert refused["statusCode"] == 403 and refused["headers"]["x-tunnel-error"] == "webhook_signature_invalid"
        # A tunnel without webhooks: a caller's socket opens (no agent answers here: caller_connect
        # waits its 1 s, gives up, writes the error row and drops the socket row), then a live
        # socket's row, a caller frame, the agent's message and close, and a caller's close.
        plain = _event("connect")
        plain["requestContext"] = plain["requestContext"] | {"connectionId": "plain-agent"}
        plain["headers"] = {**plain.get("headers", {}), "Authorization": f"Bearer {agent_token}",
                            "X-Tunnel-Reclaim-Token": "p" * 43, "X-Tunnel-Capabilities": "ack,ws"}
        assert run("connect", plain)["statusCode"] == 200
        run("response", copy.deepcopy(ready) | {"requestContext": ready["requestContext"] | {
            "connectionId": "plain-agent"}})
        plain_tunnel = ddb.get_item(TableName=outputs["connections_table_name"],
                                    Key={"connectionId": {"S": "plain-agent"}})["Item"]["tunnelId"]["S"]
        opened = run("caller_connect", handshake_for(plain_tunnel), StreamContext())
        assert opened["statusCode"] == 504, opened
        agent_conn = connect["requestContext"]["connectionId"]
        socket_row = {"connectionId": {"S": "ws#caller-conn"}, "agentConnection": {"S": agent_conn},
                      "socketTunnel": {"S": tunnel_id}, "agentDomain": {"S": "x"}, "agentStage": {"S": "prod"},
                      "callerDomain": {"S": "y"}, "callerStage": {"S": "live"}, "inSeq": {"N": "0"},
                      "outSeq": {"N": "-1"}, "connectedAt": {"N": "1000"}, "ttl": {"N": "4102444800"}}
        ddb.put_item(TableName=outputs["connections_table_name"], Item=socket_row)
        caller_frame = _event("default_message")
        caller_frame["requestContext"]["connectionId"] = "caller-conn"
        # caller_message reads the caller frames FIFO queue (terraform/caller_queue.tf): an SQS batch
        run("caller_message", {"Records": [{"messageId": "m1", "receiptHandle": "rh", "body": "aGVsbG8gYXBw",
                                            "attributes": {"MessageGroupId": "caller-conn"},
                                            "messageAttributes": {"connectionId": {"stringValue": "caller-conn",
                                                                                   "dataType": "String"}},
                                            "eventSource": "aws:sqs"}]})
        for frame in ({"type": "ws_message", "socket_id": "caller-conn", "seq": 0, "data": ["hello caller"]},
                      {"type": "ws_close", "socket_id": "caller-conn", "code": 1000}):
            run("response", copy.deepcopy(ready) | {"body": json.dumps(frame)})
        ddb.put_item(TableName=outputs["connections_table_name"], Item=socket_row)
        run("caller_disconnect", _event("disconnect") | {"requestContext": caller_frame["requestContext"] | {
            "routeKey": "$disconnect", "eventType": "DISCONNECT", "disconnectStatusCode": 4000}})
        stream_event = {"Records": [{
            "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"requestId": {"S": "r1:c1"}},
                         "NewImage": {"requestId": {"S": "r1:c1"}, "forRequest": {"S": "r1"},
                                      "connectionId": {"S": connect["requestContext"]["connectionId"]},
                                      "status": {"S": "completed"}, "statusCode": {"N": "200"}},
                         "SequenceNumber": "1"}}]}
        run("stream_notifier", stream_event)
        disconnect_context = connect["requestContext"] | {"routeKey": "$disconnect", "eventType": "DISCONNECT"}
        run("disconnect", _event("disconnect") | {"requestContext": disconnect_context})
        # Expired rows, so cleanup does its deletes (and closes the stale connection).
        ddb.put_item(TableName=outputs["connections_table_name"],
                     Item={"connectionId": {"S": "stale-conn"}, "tunnelId": {"S": "stale0tunnel"},
                           "connectedAt": {"N": "1000"}, "ttl": {"N": "1"}})
        ddb.put_item(TableName=outputs["pending_table_name"],
                     Item={"requestId": {"S": "stale-req"}, "connectionId": {"S": "stale-conn"},
                           "status": {"S": "pending"}, "createdAt": {"N": "1000"}, "ttl": {"N": "1"}})
        # An old but unexpired connection row, so cleanup probes its socket (GET @connections).
        ddb.put_item(TableName=outputs["connections_table_name"],
                     Item={"connectionId": {"S": "old-conn"}, "tunnelId": {"S": "old00tunnel0"},
                           "connectedAt": {"N": "1000"}, "ttl": {"N": "4102444800"}})
        run("cleanup", _event("scheduled"))
    finally:
        layer_aws.client = original_client
        layer_aws.reset()
    return reads, used


def test_every_variable_a_handler_reads_is_set_by_terraform(deployed, observed):
    reads, _ = observed
    assert set(reads) == set(deployed), "every function ran"
    for short, names in reads.items():
        env = deployed[short][0]
        missing = sorted(n for n in names if n not in env and n not in NOT_SET_BY_TERRAFORM)
        assert not missing, f"{short} reads {missing} but Terraform does not set them"
        wrongly_set = sorted(n for n in NOT_SET_BY_TERRAFORM if n in env)
        assert not wrongly_set, f"{short}: Terraform must leave {wrongly_set} unset on AWS"


def test_every_aws_action_is_allowed(deployed, observed):
    _, used = observed
    for short, actions in used.items():
        denied = sorted(actions - deployed[short][1])
        assert not denied, f"{short} performs {denied} but its role does not allow it"


def test_no_unneeded_action_is_allowed(deployed, observed):
    _, used = observed
    for short, actions in NOT_REACHED.items():
        stale = sorted(set(actions) - deployed[short][1])
        assert not stale, f"NOT_REACHED lists {stale} for {short} but its role no longer allows them"
    unneeded = {short: sorted(allowed - used[short] - set(NOT_CALLED_BY_HANDLER) - set(NOT_REACHED.get(short, {})))
                for short, (_, allowed) in deployed.items()}
    unneeded = {k: v for k, v in unneeded.items() if v}
    assert not unneeded, f"roles allow actions their code never performs: {unneeded}"


def test_forward_may_list_the_body_bucket(stack):
    """S3 answers HeadObject of a missing key with 404 only to a caller allowed s3:ListBucket on the
    bucket, and 403 otherwise (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html):
    bodies.get_response_body's "missing" branch (404) never ran on AWS, and the caller got a generic
    502. moto answers 404 either way, so only the policy can show it."""
    endpoint, outputs = stack
    lam, iam = _client("lambda", endpoint), _client("iam", endpoint)
    role = lam.get_function_configuration(FunctionName=outputs["function_names"]["forward"])["Role"].rsplit("/", 1)[-1]
    bucket_arn = f"arn:aws:s3:::{outputs['body_bucket_name']}"
    listing = []
    for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        for statement in doc["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            if "s3:ListBucket" in actions and statement["Effect"] == "Allow":
                listing += resources
                assert "Condition" not in statement, "HeadObject carries no s3:prefix: a condition would not match"
    assert bucket_arn in listing, f"forward's role cannot list {bucket_arn}: a missing body is a 403 on AWS"


def test_names_match_the_layer(stack):
    from httptunnel import names

    endpoint, outputs = stack
    ddb = _client("dynamodb", endpoint)
    conn = ddb.describe_table(TableName=outputs["connections_table_name"])["Table"]
    assert conn["KeySchema"] == [{"AttributeName": names.CONN_PK, "KeyType": "HASH"}]
    gsi = {i["IndexName"]: i for i in conn["GlobalSecondaryIndexes"]}
    assert names.TUNNEL_INDEX in gsi
    assert gsi[names.TUNNEL_INDEX]["KeySchema"] == [{"AttributeName": names.CONN_TUNNEL_ID, "KeyType": "HASH"}]
    pending = ddb.describe_table(TableName=outputs["pending_table_name"])["Table"]
    assert pending["KeySchema"] == [{"AttributeName": names.PENDING_PK, "KeyType": "HASH"}]
    assert pending["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    for table in (outputs["connections_table_name"], outputs["pending_table_name"]):
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == names.TTL_ATTRIBUTE
    assert set(outputs["function_names"]) == set(names.FUNCTIONS)
    rules = _client("events", endpoint).list_rules(EventBusName=outputs["event_bus_name"])["Rules"]
    assert any(json.loads(r.get("EventPattern", "{}")).get("source") == [names.EVENT_SOURCE] for r in rules)


def test_observability_counts_what_the_layer_logs(stack):
    """The metric filters read the functions' own log groups, and TunnelErrors lists exactly the
    codes forward answers with (httptunnel.names.ERROR_CODES); every alarm notifies the topic."""
    from httptunnel import names

    endpoint, outputs = stack
    filters = {f["metricTransformations"][0]["metricName"]: f
               for f in _client("logs", endpoint).describe_metric_filters()["metricFilters"]}
    errors, active = filters["TunnelErrors"], filters["ActiveTunnels"]
    assert errors["logGroupName"] == f"/aws/lambda/{outputs['function_names']['forward']}"
    assert set(re.findall(r'\$\.error_code = "(\w+)"', errors["filterPattern"])) == set(names.ERROR_CODES)
    assert errors["metricTransformations"][0]["dimensions"] == {"ErrorCode": "$.error_code"}
    assert active["logGroupName"] == f"/aws/lambda/{outputs['function_names']['cleanup']}"
    assert active["metricTransformations"][0]["metricValue"] == "$.live_connections"
    cloudwatch = _client("cloudwatch", endpoint)
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="contract-")["MetricAlarms"]
    assert len(alarms) >= 20
    assert all(a["AlarmActions"] == [outputs["alarm_topic_arn"]] for a in alarms)
    for alarm in alarms:  # a tunnel error alarm names the status names.ERROR_CODES gives its code
        code = alarm["AlarmName"].removeprefix("contract-tunnel-").replace("-", "_")
        if alarm["AlarmName"].startswith("contract-tunnel-"):
            assert f"{names.ERROR_CODES[code]} {code}" in alarm["AlarmDescription"]
    assert outputs["dashboard_url"].endswith("#dashboards/dashboard/contract")
    assert cloudwatch.get_dashboard(DashboardName="contract")["DashboardBody"]


# --------------------------------------------------------------------------- the secrets key (kms.tf)
# moto stores a key policy but never evaluates one (nor IAM): whether a role can use the key is
# decided here, from the policy documents Terraform applied, by the rules AWS documents for a key
# policy (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html): a
# principal named in the key policy needs nothing more; the account root named there delegates to
# IAM, so the role's own policy must allow the action on the key too.

def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _conditions_hold(conditions: dict, request: dict) -> bool:
    for operator, tests in conditions.items():
        for key, wanted in tests.items():
            wanted = _listed(wanted)
            if operator == "StringEquals":
                if request.get(key) not in wanted:
                    return False
            elif operator == "ForAllValues:StringEquals":
                if not set(_listed(request.get(key, []))) <= set(wanted):
                    return False
            elif operator == "Null":
                if (key not in request) != (wanted == ["true"]):
                    return False
            else:  # an operator this evaluator cannot judge: fail loudly rather than guess
                raise AssertionError(f"key policy uses {operator}: teach the evaluator")
    return True


def _statements_allow(statements: list, action: str, resource: str, request: dict, principals: set | None) -> bool:
    for st in statements:
        if st["Effect"] != "Allow":
            continue
        if principals is not None and not principals & set(_listed(st["Principal"]["AWS"])):
            continue
        if not any(re.fullmatch(a.replace("*", ".*"), action) for a in _listed(st["Action"])):
            continue
        if not any(re.fullmatch(r.replace("*", ".*"), resource) for r in _listed(st["Resource"])):
            continue
        if _conditions_hold(st.get("Condition", {}), request):
            return True
    return False


@pytest.fixture(scope="module")
def secrets_key(stack):
    endpoint, outputs = stack
    lam, iam, kms = _client("lambda", endpoint), _client("iam", endpoint), _client("kms", endpoint)
    key_arn = outputs["secrets_kms_key_arn"]
    key_policy = json.loads(kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])["Statement"]
    roles = {}
    for short, name in outputs["function_names"].items():
        role_arn = lam.get_function_configuration(FunctionName=name)["Role"]
        role = role_arn.rsplit("/", 1)[-1]
        statements = []
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            statements += (json.loads(doc) if isinstance(doc, str) else doc)["Statement"]
        roles[short] = (role_arn, statements)
    root = f"arn:aws:iam::{key_arn.split(':')[4]}:root"
    return key_arn, key_policy, roles, root, endpoint


def _may_use_key(secrets_key, short: str, action: str, request: dict) -> bool:
    key_arn, key_policy, roles, root, _ = secrets_key
    role_arn, iam_statements = roles[short]
    if _statements_allow(key_policy, action, "*", request, {role_arn}):
        return True
    return (_statements_allow(key_policy, action, "*", request, {root})
            and _statements_allow(iam_statements, action, key_arn, request, None))


def test_only_connect_seals_and_only_forward_opens_webhook_secrets(secrets_key):
    """Policy-level (moto cannot enforce IAM): a role the key policy does not name for it cannot
    encrypt or decrypt sealed webhook secrets, whatever its own IAM policy says; without the row's
    encryption context nobody can."""
    sealed_context = {"kms:EncryptionContextKeys": ["connection", "tunnel"],
                      "kms:EncryptionContext:tunnel": "abcdefghij12", "kms:EncryptionContext:connection": "c1="}
    functions = set(secrets_key[2])
    encrypt = {fn for fn in functions if _may_use_key(secrets_key, fn, "kms:Encrypt", sealed_context)}
    decrypt = {fn for fn in functions if _may_use_key(secrets_key, fn, "kms:Decrypt", sealed_context)}
    assert encrypt == {"connect"}
    assert decrypt == {"forward", "forward_stream"}, "cleanup, stream_notifier and the rest see only ciphertext"
    for fn in functions:
        for action in ("kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:CreateGrant"):
            assert not _may_use_key(secrets_key, fn, action, {}), f"{fn} may {action} without the row's context"
    key_arn, key_policy, _, root, _ = secrets_key
    assert not _statements_allow(key_policy, "kms:Decrypt", "*", sealed_context, {root}), \
        "the account's IAM cannot be given the sealed secrets"
    assert not _statements_allow(key_policy, "kms:CreateGrant", "*", {}, {root}), "no grant can hand it over either"


def test_ssm_parameters_under_the_key_are_readable_only_by_their_functions(secrets_key, deployed):
    """The SecureStrings Terraform generates use the key; reading one needs the role's ssm:GetParameter(s)
    on it and the key policy's leave to decrypt through SSM with its PARAMETER_ARN."""
    key_arn, _, roles, _, _ = secrets_key
    connect_env, response_env = deployed["connect"][0], deployed["response"][0]
    account = key_arn.split(":")[4]
    arn = lambda name: f"arn:aws:ssm:us-east-1:{account}:parameter/{name.lstrip('/')}"  # noqa: E731
    parameters = {"jwt": arn(connect_env["JWT_SECRET_SSM_PARAMETER"]),
                  "id0": arn(response_env["REQUEST_ID_KEY_SSM_PREFIX"] + "0"),
                  "id1": arn(response_env["REQUEST_ID_KEY_SSM_PREFIX"] + "1")}
    ssm = _client("ssm", secrets_key[4])
    for parameter in parameters.values():
        [described] = ssm.describe_parameters(ParameterFilters=[
            {"Key": "Name", "Values": ["/" + parameter.split(":parameter/", 1)[1]]}])["Parameters"]
        assert described["KeyId"] == key_arn, f"{described['Name']} is not under the deployment's key"
    readers = {}
    for name, parameter in parameters.items():
        through_ssm = {"kms:ViaService": "ssm.us-east-1.amazonaws.com", "kms:EncryptionContextKeys": ["PARAMETER_ARN"],
                       "kms:EncryptionContext:PARAMETER_ARN": parameter}
        readers[name] = {fn for fn, (_, statements) in roles.items()
                         if any(_statements_allow(statements, action, parameter, {}, None)
                                for action in ("ssm:GetParameter", "ssm:GetParameters"))
                         and _may_use_key(secrets_key, fn, "kms:Decrypt", through_ssm)}
        elsewhere = {**through_ssm, "kms:ViaService": "s3.us-east-1.amazonaws.com"}
        assert not any(_may_use_key(secrets_key, fn, "kms:Decrypt", elsewhere) for fn in roles), "only through SSM"
    assert readers == {"jwt": {"connect"}, "id0": {"forward", "forward_stream", "response"},
                       "id1": {"forward", "forward_stream", "response"}}


def test_behind_cloudfront_forward_stream_reads_only_the_secret_terraform_grants(stack, deployed, monkeypatch):
    """CloudFront is not in the local stack: moto has no CloudFront Functions or policies, and the root
    creates modules/cloudfront only with a domain (terraform/tests/wiring.tftest.hcl checks that wiring).
    Its contract with the code is checked here instead: given the environment Terraform gives
    forward_stream behind CloudFront (EDGE_ORIGIN_SECRET_SSM_PARAMETER = main.tf's
    edge_origin_secret_parameter), the only action forward_stream adds to those of its role in the
    local stack is the one main.tf's EdgeOriginSecret statement grants, on that parameter."""
    from httptunnel import aws as layer_aws
    from httptunnel import edge_origin, tunnels

    endpoint, outputs = stack
    main = (ROOT / "terraform" / "main.tf").read_text()
    parameter = re.search(r'edge_origin_secret_parameter\s*=\s*"([^"]+)"', main).group(1).replace(
        "${var.name_prefix}", "contract")
    grant = re.search(r'sid\s*=\s*"EdgeOriginSecret"\s*actions\s*=\s*(\[[^\]]*\])\s*resources\s*=\s*\[([^\]]*)\]',
                      main, re.S)
    assert grant and 'parameter/${trimprefix(local.edge_origin_secret_parameter, "/")}' in grant.group(2)
    secret = "v" * 64
    _client("ssm", endpoint).put_parameter(Name=parameter, Value=secret, Type="SecureString")
    env, actions = deployed["forward_stream"]
    assert env["EDGE_ORIGIN_SECRET_SSM_PARAMETER"] == "", "no CloudFront (no domain) in the local stack"
    for key, value in {**env, "EDGE_ORIGIN_SECRET_SSM_PARAMETER": parameter, "AWS_ENDPOINT_URL": endpoint,
                       "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1", "TUNNEL_DOMAIN": "t.example.com"}.items():
        monkeypatch.setenv(key, value)
    used: list[tuple[str, dict]] = []
    original_client = layer_aws.client

    def recording_client(*args, **kwargs):
        made = original_client(*args, **kwargs)
        made.meta.events.register("before-parameter-build", lambda params, model, **_: used.append(
            (iam_action(model.service_model.service_name, model.name, params), dict(params))))
        return made

    class Heads(StreamContext):
        status = None

        def open_stream(self, status_code=200, headers=None, cookies=None):
            self.status = status_code
            return super().open_stream(status_code, headers, cookies)

    event = _event("http_get")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/hello"
    event["headers"].update({edge_origin.SECRET_HEADER: secret, edge_origin.HOST_HEADER: "nosuchtunnel.t.example.com",
                             edge_origin.VIEWER_HEADER: "203.0.113.5"})
    monkeypatch.setattr(layer_aws, "client", recording_client)
    layer_aws.reset()
    edge_origin.reset()
    tunnels.CONNECTIONS.clear()
    try:
        context = Heads()
        _load_handler("forward_stream")(event, context)
    finally:
        layer_aws.reset()
        edge_origin.reset()
    assert context.status == 404, "the secret matched: routed by the tunnel's host (no such tunnel), not edge_bypass"
    added = {action for action, _ in used} - actions
    assert added == set(json.loads(grant.group(1))) == {"ssm:GetParameter"}, added
    assert [params["Name"] for action, params in used if action == "ssm:GetParameter"] == [parameter]
