# Offline wiring checks: `terraform test` with a mocked AWS provider (no network, no moto).
# tests/infra/test_terraform.py runs this in `make test`.

mock_provider "aws" {
  source = "./tests/mocks" # the ARNs and endpoints the root parses (tests/mocks/aws.tfmock.hcl)
}

override_resource {
  target = module.code_bucket.aws_s3_bucket.this
  values = { arn = "arn:aws:s3:::mock-code-bucket", bucket = "mock-code-bucket" }
}

override_resource {
  target = module.functions["connect"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:connect"
    function_name = "http-tunnel-connect"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/connect/invocations"
  }
}

override_resource {
  target = module.functions["disconnect"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:disconnect"
    function_name = "http-tunnel-disconnect"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/disconnect/invocations"
  }
}

override_resource {
  target = module.functions["response"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:response"
    function_name = "http-tunnel-response"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/response/invocations"
  }
}

override_resource {
  target = module.functions["forward"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:forward"
    function_name = "http-tunnel-forward"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/forward/invocations"
  }
}

override_resource {
  target = module.functions["cleanup"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:cleanup"
    function_name = "http-tunnel-cleanup"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/cleanup/invocations"
  }
}

override_resource {
  target = module.functions["stream_notifier"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:stream_notifier"
    function_name = "http-tunnel-stream-notifier"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/stream_notifier/invocations"
  }
}

override_resource {
  target = module.functions["caller_connect"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:caller_connect"
    function_name = "http-tunnel-caller-connect"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/caller_connect/invocations"
  }
}

override_resource {
  target = module.functions["caller_message"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:caller_message"
    function_name = "http-tunnel-caller-message"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/caller_message/invocations"
  }
}

override_resource {
  target = module.functions["caller_disconnect"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:caller_disconnect"
    function_name = "http-tunnel-caller-disconnect"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/caller_disconnect/invocations"
  }
}

# aws.us_east_1 (waf.tf): the provider modules/waf creates the CloudFront-scope ACL through. Its
# region is what modules/waf's precondition reads (data "aws_region"); the ACL's ARN is known at plan
# time so the runs below can see it reach the distribution.
mock_provider "aws" {
  alias           = "us_east_1"
  override_during = plan

  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_wafv2_web_acl" {
    defaults = { arn = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/http-tunnel-edge/a1b2c3d4" }
  }
}

# The real provider behind aws.secret_generator (see versions.tf): configured without any call
# to AWS. Every run below brings its own key material or allows anonymous agents, so the
# generator has no instance and is never opened; the generated path is applied to moto by
# tests/infra/test_contract.py and by every local stack.
provider "aws" {
  alias                       = "secret_generator"
  region                      = "us-east-1"
  access_key                  = "mock"
  secret_key                  = "mock"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

variables {
  build_dir                 = "./tests/fixtures/build"
  jwt_secret_ssm_parameter  = "/tunnel/jwt"
  request_id_key_ssm_prefix = "/tunnel/request-id-key-" # own key material: the generator is never opened
}

run "tables" {
  command = apply

  assert {
    condition     = module.tables.connections_table_name == "http-tunnel-connections" && module.tables.pending_table_name == "http-tunnel-pending-requests"
    error_message = "table names must be <prefix>-connections and <prefix>-pending-requests"
  }

  assert {
    condition     = module.tables.tunnel_index_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/mock/index/tunnel-id-index"
    error_message = "GSI must be tunnel-id-index"
  }
}

run "routes_and_stream" {
  command = apply

  variables {
    traffic_log = true
  }

  assert {
    condition = module.websocket_api.route_targets == {
      "$connect"    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/connect/invocations"
      "$disconnect" = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/disconnect/invocations"
      "$default"    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/response/invocations"
    }
    error_message = "WebSocket routes must be exactly $connect -> connect, $disconnect -> disconnect, $default -> response"
  }

  assert {
    condition     = module.http_api.integration_uri == "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/forward/invocations"
    error_message = "HTTP $default route must invoke forward"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this[0].function_name == "arn:aws:lambda:us-east-1:123456789012:function:stream_notifier"
    error_message = "the pending stream must feed stream_notifier"
  }

  assert {
    condition     = output.ws_url == "wss://abc123.execute-api.us-east-1.amazonaws.com/prod" && output.websocket_stage_name == "prod"
    error_message = "ws_url must be wss://<api>/<stage>, what ttf --endpoint takes"
  }

  assert {
    condition     = module.http_api.stage_name == "$default"
    error_message = "HTTP API stage must be $default"
  }

  assert {
    condition     = flatten([for fc in aws_lambda_event_source_mapping.this[0].filter_criteria : [for f in fc.filter : jsondecode(f.pattern)]]) == [{ eventName = ["INSERT"], dynamodb = { NewImage = { status = { S = ["completed", "error"] } } } }]
    error_message = "stream filter must pass new answer rows (INSERT, status completed or error)"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this[0].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "stream mapping must report partial batch failures"
  }

  assert {
    condition     = jsondecode(module.events.traffic_event_pattern) == { source = ["http-tunnel"] }
    error_message = "traffic rule must match source http-tunnel"
  }

  assert {
    condition     = module.events.cleanup_schedule == "rate(5 minutes)"
    error_message = "cleanup schedule default must be rate(5 minutes)"
  }

  assert {
    condition     = output.function_names == { for fn in ["caller_connect", "caller_disconnect", "caller_message", "cleanup", "connect", "disconnect", "forward", "forward_stream", "response", "stream_notifier"] : fn => "http-tunnel-${replace(fn, "_", "-")}" }
    error_message = "function_names must map every short name to <prefix>-<fn>"
  }
}

run "environment_and_iam" {
  command = apply

  variables {
    jwt_max_lifetime = 86400
  }

  assert {
    condition     = nonsensitive(keys(module.functions["forward"].environment)) == tolist(["BODY_BUCKET", "CONNECTIONS_TABLE", "LOG_LEVEL", "PATH_REFERER_ROUTING", "PATH_ROUTING", "PENDING_TABLE", "PUBLIC_HTTP_URL", "REQUEST_ID_KEY_SSM_PREFIX", "REQUEST_ID_KEY_VERSION", "SECRETS_KMS_KEY_ID", "TUNNEL_BURST_LIMIT", "TUNNEL_DOMAIN", "TUNNEL_MAX_IN_FLIGHT", "TUNNEL_RATE_LIMIT", "WS_MANAGEMENT_ENDPOINT"])
    error_message = "forward environment"
  }

  assert {
    condition = (nonsensitive(module.functions["forward"].environment["TUNNEL_RATE_LIMIT"]) == "10"
      && nonsensitive(module.functions["forward_stream"].environment["TUNNEL_BURST_LIMIT"]) == "40"
      && nonsensitive(module.functions["response"].environment["AGENT_MESSAGE_RATE_LIMIT"]) == "30"
    && length(module.waf) == 0 && output.web_acl_arn == "")
    error_message = "issue 29: per-tunnel ceilings reach forward and forward_stream, the socket budget reaches response, WAF is off by default"
  }

  assert {
    condition = alltrue([for fn in ["forward", "forward_stream", "response"] :
      nonsensitive(module.functions[fn].environment["REQUEST_ID_KEY_SSM_PREFIX"]) == "/tunnel/request-id-key-" &&
      nonsensitive(module.functions[fn].environment["REQUEST_ID_KEY_VERSION"]) == "1"
    ]) && length(aws_ssm_parameter.request_id_key) == 0
    error_message = "forward, forward_stream and response get the request-id key slots and version; an operator's own keys are not generated"
  }

  assert {
    condition = alltrue([for fn, statements in local.policy_statements :
      contains(["forward", "forward_stream", "response", "caller_connect"], fn) == anytrue([for st in statements : contains(st.actions, "ssm:GetParameters")])
    ]) && toset(one([for st in local.policy_statements["response"] : st.resources if st.sid == "RequestIdKeys"])) == toset(["arn:aws:ssm:us-east-1:123456789012:parameter/tunnel/request-id-key-0", "arn:aws:ssm:us-east-1:123456789012:parameter/tunnel/request-id-key-1"])
    error_message = "only forward, forward_stream, response and caller_connect (it mints ws_open's id) may read the request-id keys, and only the two slots"
  }

  assert {
    condition     = nonsensitive(module.functions["forward"].environment["PATH_REFERER_ROUTING"]) == "false"
    error_message = "Referer routing is off unless the operator of a single-tenant deployment turns it on"
  }

  assert {
    condition     = nonsensitive(module.functions["forward"].environment["WS_MANAGEMENT_ENDPOINT"]) == "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    error_message = "management endpoint must be https://<ws api>/<stage>"
  }

  assert {
    condition     = nonsensitive(module.functions["connect"].environment["REQUIRE_AUTH"]) == "true" && nonsensitive(module.functions["connect"].environment["JWT_SECRET_SSM_PARAMETER"]) == "/tunnel/jwt"
    error_message = "connect gets the auth settings"
  }

  assert {
    condition     = nonsensitive(module.functions["connect"].environment["JWT_MAX_LIFETIME"]) == "86400" && nonsensitive(module.functions["connect"].environment["JWT_AUDIENCE"]) == "" && nonsensitive(module.functions["connect"].environment["JWT_ISSUER"]) == ""
    error_message = "an operator's own secret gets no issuer/audience it did not ask for (its tokens keep working)"
  }

  assert {
    condition     = length(aws_ssm_parameter.jwt_secret) == 0 && output.agent_auth.secret_parameter == "/tunnel/jwt" && !output.agent_auth.anonymous
    error_message = "no secret is generated when the operator brings one; agent_auth names the operator's parameter"
  }

  assert {
    condition     = flatten([for s in jsondecode(module.functions["connect"].policy).Statement : s.Resource if s.Sid == "JwtSecretParameter"]) == ["arn:aws:ssm:us-east-1:123456789012:parameter/tunnel/jwt"]
    error_message = "connect may read exactly the configured parameter"
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.this) == 0
    error_message = "traffic_log defaults to false: no stream mapping, so no stream record invokes anything"
  }

  assert {
    condition     = flatten([for s in jsondecode(module.functions["forward"].policy).Statement : s.Action if s.Sid == "Pending"]) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    error_message = "forward reads answers and writes only a give-up row: no UpdateItem or DeleteItem on the request path"
  }

  assert {
    condition     = nonsensitive(keys(module.functions["stream_notifier"].environment)) == tolist(["CONNECTIONS_TABLE", "EVENT_BUS_NAME", "LOG_LEVEL"])
    error_message = "stream_notifier environment"
  }

  assert {
    condition     = !contains(flatten([for s in jsondecode(module.functions["connect"].policy).Statement : s.Action]), "execute-api:ManageConnections")
    error_message = "connect may not post to connections"
  }

  assert {
    condition     = contains(flatten([for s in jsondecode(module.functions["connect"].policy).Statement : s.Action]), "ssm:GetParameter")
    error_message = "connect may read the JWT secret parameter when one is configured"
  }

  assert {
    condition     = contains(flatten([for s in jsondecode(module.functions["forward"].policy).Statement : s.Action]), "execute-api:ManageConnections")
    error_message = "forward must be allowed to post to connections"
  }

  assert {
    condition     = flatten([for s in jsondecode(module.functions["stream_notifier"].policy).Statement : s.Action if s.Sid == "PublishEvents"]) == ["events:PutEvents"]
    error_message = "stream_notifier may only put events (besides reading its stream and logging)"
  }

  assert {
    condition     = alltrue([for fn, m in module.functions : alltrue([for s in jsondecode(m.policy).Statement : !contains(flatten([s.Action]), "*") && !contains(flatten([s.Resource]), "*")])])
    error_message = "no wildcard actions or resources"
  }
}

run "snap_start_invokes_the_alias" {
  command = apply

  variables {
    snap_start  = true
    traffic_log = true
  }

  override_resource {
    target = module.functions["forward"].aws_lambda_alias.live
    values = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:forward:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:forward:live/invocations"
    }
  }

  override_resource {
    target = module.functions["connect"].aws_lambda_alias.live
    values = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:connect:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:connect:live/invocations"
    }
  }

  override_resource {
    target = module.functions["disconnect"].aws_lambda_alias.live
    values = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:disconnect:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:disconnect:live/invocations"
    }
  }

  override_resource {
    target = module.functions["response"].aws_lambda_alias.live
    values = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:response:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:response:live/invocations"
    }
  }

  override_resource {
    target = module.functions["cleanup"].aws_lambda_alias.live
    values = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:cleanup:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:cleanup:live/invocations"
    }
  }

  override_resource {
    target = module.functions["stream_notifier"].aws_lambda_alias.live
    values = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:stream_notifier:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:stream_notifier:live/invocations"
    }
  }

  assert {
    condition     = alltrue([for fn, m in module.functions : m.qualifier == (fn == "forward_stream" ? null : "live")])
    error_message = "with snap_start every function is invoked through its alias \"live\", except forward_stream (SnapStart off until its wrapper is verified with it)"
  }

  assert {
    condition     = module.http_api.integration_uri == "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:forward:live/invocations" && module.http_api.permission_qualifier == "live"
    error_message = "the HTTP API must invoke forward's alias, and be allowed to"
  }

  assert {
    condition     = module.websocket_api.route_targets["$default"] == module.functions["response"].invoke_arn && alltrue([for k, q in module.websocket_api.permission_qualifiers : q == "live"])
    error_message = "the WebSocket routes must invoke the aliases, and be allowed to"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this[0].function_name == module.functions["stream_notifier"].function_arn && module.events.cleanup_target.arn == module.functions["cleanup"].function_arn && module.events.cleanup_target.qualifier == "live"
    error_message = "the stream mapping and the cleanup schedule must invoke the aliases"
  }
}

run "without_snap_start_callers_invoke_the_function" {
  command = plan

  assert {
    condition     = alltrue([for fn, m in module.functions : m.qualifier == null])
    error_message = "no alias without snap_start"
  }
}

# Caller WebSockets (issue 24): a second WebSocket API, its routes, its $connect throttle under the
# account's 500 new connections per second (shared with the agents' $connect), the permissions, the
# caller functions' environment and IAM, and its custom domain's mapping.
run "caller_websocket_api" {
  command = apply

  assert {
    condition = module.caller_websocket_api.route_targets == {
      "$connect"    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/caller_connect/invocations"
      "$disconnect" = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/caller_disconnect/invocations"
      "$default"    = "arn:aws:apigateway:us-east-1:sqs:path/123456789012/http-tunnel-caller-frames.fifo"
    }
    error_message = "caller routes: $connect -> caller_connect, $disconnect -> caller_disconnect, $default -> the caller frames queue (caller_queue.tf)"
  }

  assert {
    condition     = module.caller_websocket_api.throttles["$connect"] == [100, 200] && module.caller_websocket_api.throttles["*"] == [200, 400]
    error_message = "the caller API's $connect throttle is 100/s (burst 200), its messages 200/s (burst 400)"
  }

  assert {
    condition     = module.caller_websocket_api.throttles["$connect"][0] + module.websocket_api.throttles["$connect"][0] <= 500
    error_message = "both APIs' $connect rates together stay under the account's 500 new connections per second"
  }

  assert {
    condition     = output.caller_ws_url == "wss://abc123.execute-api.us-east-1.amazonaws.com/live"
    error_message = "caller_ws_url is wss://<caller api>/<stage>"
  }

  assert {
    condition     = nonsensitive(keys(module.functions["caller_message"].environment)) == tolist(["CALLER_MESSAGE_BURST_LIMIT", "CALLER_MESSAGE_RATE_LIMIT", "CALLER_WS_MANAGEMENT_ENDPOINT", "CONNECTIONS_TABLE", "LOG_LEVEL", "WS_MANAGEMENT_ENDPOINT"])
    error_message = "caller_message gets exactly what it reads"
  }

  assert {
    condition     = nonsensitive(module.functions["caller_message"].environment["CALLER_MESSAGE_RATE_LIMIT"]) == "50" && nonsensitive(module.functions["caller_message"].environment["CALLER_MESSAGE_BURST_LIMIT"]) == "100"
    error_message = "caller messages spend a per-tunnel budget of 50/s (burst 100) by default"
  }

  assert {
    condition     = alltrue([for k in ["TUNNEL_RATE_LIMIT", "TUNNEL_BURST_LIMIT", "TUNNEL_MAX_IN_FLIGHT"] : nonsensitive(module.functions["caller_connect"].environment[k]) == nonsensitive(module.functions["forward"].environment[k])])
    error_message = "a caller's $connect meets the same per-tunnel ceilings as forward's requests"
  }

  assert {
    condition     = nonsensitive(module.functions["response"].environment["CALLER_WS_MANAGEMENT_ENDPOINT"]) == "https://abc123.execute-api.us-east-1.amazonaws.com/live"
    error_message = "response posts the agent's ws_message frames to the caller API's @connections"
  }

  assert {
    condition     = [for st in local.policy_statements["caller_message"] : st.sid if st.sid == "CloseCaller"] == ["CloseCaller"] && alltrue([for r in [for st in local.policy_statements["caller_message"] : st if st.sid == "CloseCaller"][0].resources : endswith(r, "/live/DELETE/@connections/*")])
    error_message = "caller_message may only close callers' sockets (DELETE) on the caller API"
  }

  assert {
    condition     = length([for st in local.policy_statements["caller_disconnect"] : st if contains(st.actions, "execute-api:ManageConnections") && anytrue([for r in st.resources : strcontains(r, "/live/")])]) == 0
    error_message = "caller_disconnect never touches the caller API's connections"
  }
}

run "rejects_caller_connects_past_the_account_limit" {
  command = plan

  variables {
    caller_connect_throttling_rate_limit = 496 # + the agents' 5/s: over 500
  }

  expect_failures = [var.caller_connect_throttling_rate_limit]
}

run "custom_domain" {
  command = plan

  variables {
    domain_name     = "t.example.com"
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    hosted_zone_id  = "Z123"
  }

  assert {
    condition     = output.http_url == "https://t.example.com" && output.ws_url == "wss://ws.t.example.com"
    error_message = "custom domain URLs"
  }

  assert {
    condition     = nonsensitive(module.functions["forward"].environment["TUNNEL_DOMAIN"]) == "t.example.com"
    error_message = "wildcard domain enables subdomain routing"
  }

  assert {
    condition     = contains(keys(module.domain[0].targets), "sockets.t.example.com")
    error_message = "the caller WebSocket API gets its own domain, sockets.<domain> (a WebSocket API cannot share one)"
  }
  expect_failures = [check.path_routing_default] # path_routing left unset: the upgrade warning
}

run "rejects_bad_architecture" {
  command = plan

  variables {
    lambda_architecture = "sparc"
  }

  expect_failures = [var.lambda_architecture]
}

run "rejects_short_forward_timeout" {
  command = plan

  variables {
    function_settings = { forward = { timeout = 10 } }
  }

  expect_failures = [var.function_settings]
}

run "public_edge_defaults" {
  command = apply

  assert {
    condition     = aws_s3_object.code["forward"].bucket == "mock-code-bucket" && module.body_bucket.bucket_name == "mock-bucket"
    error_message = "code zips live in their own bucket, never next to the bodies agents and callers reach"
  }

  assert {
    condition = alltrue([for doc in [jsondecode(module.body_bucket.policy), jsondecode(module.code_bucket.policy)] : anytrue([
      for st in doc.Statement : st.Effect == "Deny" && st.Principal == "*" && st.Action == "s3:*" && st.Condition.Bool["aws:SecureTransport"] == "false"
    ])])
    error_message = "both buckets must deny every request made without TLS (aws:SecureTransport = false)"
  }

  assert {
    condition     = alltrue([for doc in [jsondecode(module.body_bucket.policy), jsondecode(module.code_bucket.policy)] : length(doc.Statement[0].Resource) == 2])
    error_message = "the TLS-only statement must cover the bucket and its objects"
  }

  assert {
    condition     = module.body_bucket.versioning_status == "Enabled"
    error_message = "the body bucket must be versioned: a redirect names the exact version forward checked"
  }

  assert {
    condition     = module.body_bucket.lifecycle_rule_ids == ["expire-request-bodies", "expire-response-bodies", "remove-expired-delete-markers", "abort-incomplete-uploads"]
    error_message = "every body (req/, resp/) and its old versions expire within a day; delete markers and stale uploads are cleaned up"
  }

  assert {
    condition     = module.code_bucket.versioning_status == "Disabled" && module.code_bucket.lifecycle_rule_ids == []
    error_message = "the code bucket is neither versioned nor expired: each apply uploads the zips again"
  }

  assert {
    condition     = contains(flatten([for s in jsondecode(module.functions["forward"].policy).Statement : s.Action if s.Sid == "PinnedResponseBodies"]), "s3:GetObjectVersion")
    error_message = "forward reads and presigns one version of an uploaded answer"
  }

  assert {
    condition     = nonsensitive(module.functions["forward"].environment["PATH_ROUTING"]) == "true" && nonsensitive(module.functions["response"].environment["PATH_ROUTING"]) == "true"
    error_message = "path routing is on by default"
  }

  assert {
    condition     = module.http_api.execute_api_disabled == false
    error_message = "without a custom domain the execute-api URL is the only way in"
  }

  assert {
    condition     = module.http_api.throttles == { "*" = [20, 100], "$default" = [20, 100] }
    error_message = "HTTP API: 20 rps, burst 100, on the stage and on the $default route itself"
  }

  assert {
    condition     = module.websocket_api.throttles == { "*" = [100, 200], "$connect" = [5, 20] }
    error_message = "WebSocket API: 100 msg/s, burst 200; $connect its own 5/s, burst 20"
  }

  assert {
    condition     = module.functions["forward"].reserved_concurrency == -1
    error_message = "forward_reserved_concurrency is off by default"
  }

  assert {
    condition     = length(module.budget) == 0 && output.budget_name == ""
    error_message = "no budget unless budget_monthly_usd is set"
  }
}

run "function_url_fronts_forward_stream" {
  command = apply

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 10
    max_stream_seconds           = 300
  }

  assert {
    condition     = output.function_url_invoke_statement.function_name == "http-tunnel-forward-stream" && module.function_url[0].invoke_mode == "RESPONSE_STREAM"
    error_message = "the function URL streams, in front of forward_stream (not the buffered forward)"
  }

  assert {
    condition = (nonsensitive(module.functions["forward_stream"].environment["AWS_LAMBDA_EXEC_WRAPPER"]) == "/opt/python/httptunnel/runtime_bootstrap"
    && nonsensitive(module.functions["forward_stream"].environment["MAX_STREAM_SECONDS"]) == "300")
    error_message = "forward_stream runs the layer's Runtime API loop (the wrapper) and knows its cap"
  }

  assert {
    condition = (
      [for st in local.policy_statements["forward_stream"] : st if !contains(["StreamFramesRead", "StreamSegmentsRead", "StreamHolds"], st.sid)] == local.policy_statements["forward"]
      && one([for st in local.policy_statements["forward_stream"] : st.actions if st.sid == "StreamFramesRead"]) == ["dynamodb:BatchWriteItem"]
      && one([for st in local.policy_statements["forward_stream"] : st.actions if st.sid == "StreamSegmentsRead"]) == ["s3:DeleteObjectVersion"]
      && one([for st in local.policy_statements["forward_stream"] : st.actions if st.sid == "StreamHolds"]) == ["dynamodb:UpdateItem"]
    )
    error_message = "forward_stream's role is forward's plus deleting the frames and segment versions it read and updating its tunnels' open-request leases, no more"
  }

  assert {
    condition     = nonsensitive(module.functions["forward_stream"].environment["TUNNEL_MAX_OPEN_STREAMS"]) == "8" && !contains(keys(module.functions["forward"].environment), "TUNNEL_MAX_OPEN_STREAMS")
    error_message = "forward_stream counts a tunnel's open requests across environments (tunnel_max_open_streams, 8 by default); forward does not"
  }

  assert {
    condition     = nonsensitive(module.functions["forward_stream"].environment["TOKEN_MAX_OPEN_STREAMS"]) == "8" && !contains(keys(module.functions["forward"].environment), "TOKEN_MAX_OPEN_STREAMS")
    error_message = "forward_stream counts a token's open requests across environments (token_max_open_streams, 8 by default); forward does not"
  }

  assert {
    condition     = module.functions["forward_stream"].reserved_concurrency == 10 && module.functions["forward_stream"].qualifier == null
    error_message = "forward_reserved_concurrency bounds the function URL's function too; SnapStart stays off for it"
  }
}

run "subdomains_only" {
  command = plan

  variables {
    domain_name     = "t.example.com"
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    path_routing    = false
  }

  assert {
    condition     = module.http_api.execute_api_disabled == true
    error_message = "path_routing = false switches the execute-api URL (a shared path-mode origin) off"
  }

  assert {
    condition     = nonsensitive(module.functions["forward"].environment["PATH_ROUTING"]) == "false" && nonsensitive(module.functions["response"].environment["PATH_ROUTING"]) == "false"
    error_message = "forward refuses /<id>/ and response stops advertising a path URL"
  }
}

run "path_routing_defaults_off_with_a_wildcard_domain" {
  command = plan

  variables {
    domain_name     = "t.example.com"
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
  }

  assert {
    condition     = module.http_api.execute_api_disabled == true && nonsensitive(module.functions["forward"].environment["PATH_ROUTING"]) == "false"
    error_message = "a wildcard domain without path_routing set: subdomains only, no shared origin (issue 30)"
  }

  expect_failures = [check.path_routing_default]
}

run "path_routing_stays_on_without_a_domain" {
  command = plan

  assert {
    condition     = nonsensitive(module.functions["forward"].environment["PATH_ROUTING"]) == "true" && module.http_api.execute_api_disabled == false
    error_message = "no domain: path mode is the only mode"
  }
}

run "path_routing_off_needs_a_wildcard_domain" {
  command = plan

  variables {
    path_routing = false
  }

  expect_failures = [var.path_routing]
}

run "bill_ceilings" {
  command = apply

  variables {
    forward_reserved_concurrency = 200
    budget_monthly_usd           = 25
    alarm_topic_arn              = "arn:aws:sns:us-east-1:123456789012:ops-pager"
  }

  assert {
    condition     = module.functions["forward"].reserved_concurrency == 200 && module.functions["response"].reserved_concurrency == -1
    error_message = "forward_reserved_concurrency reserves forward's concurrency and nothing else's"
  }

  assert {
    condition     = module.budget[0].limit_amount == "25.00" && output.budget_name == "http-tunnel-monthly"
    error_message = "the budget alarm has the monthly limit"
  }

  assert {
    condition = module.budget[0].notifications == tolist([
      "ACTUAL 100 arn:aws:sns:us-east-1:123456789012:ops-pager",
      "ACTUAL 80 arn:aws:sns:us-east-1:123456789012:ops-pager",
      "FORECASTED 100 arn:aws:sns:us-east-1:123456789012:ops-pager",
    ])
    error_message = "budget notifications at 80/100 % actual and 100 % forecast, each to alarm_topic_arn when it is set"
  }
}

run "budget_sends_to_the_stacks_alarm_topic_by_default" {
  command = apply

  variables {
    budget_monthly_usd = 40
  }

  assert {
    condition     = module.budget[0].notifications == tolist(["ACTUAL 100 ${output.alarm_topic_arn}", "ACTUAL 80 ${output.alarm_topic_arn}", "FORECASTED 100 ${output.alarm_topic_arn}"])
    error_message = "without alarm_topic_arn the budget notifies the stack's own alarm topic"
  }
}

run "reserved_concurrency_is_a_whole_positive_number" {
  command = plan

  variables {
    forward_reserved_concurrency = 0
  }

  expect_failures = [var.forward_reserved_concurrency]
}

run "reserved_concurrency_set_once" {
  command = plan

  variables {
    forward_reserved_concurrency = 50
    function_settings            = { forward = { reserved_concurrency = 60 } }
  }

  expect_failures = [var.forward_reserved_concurrency]
}

run "websocket_rate_keeps_up_with_http" {
  command = plan

  variables {
    http_throttling_rate_limit      = 500
    websocket_throttling_rate_limit = 100
  }

  expect_failures = [var.websocket_throttling_rate_limit]
}

run "websocket_rate_leaves_room_for_resends" {
  command = plan

  variables {
    http_throttling_rate_limit      = 90
    websocket_throttling_rate_limit = 100
  }

  expect_failures = [var.websocket_throttling_rate_limit]
}

run "websocket_burst_keeps_up_with_http" {
  command = plan

  variables {
    http_throttling_burst_limit      = 300
    websocket_throttling_burst_limit = 200
  }

  expect_failures = [var.websocket_throttling_burst_limit]
}

run "local_stack_leaves_out_tls_policies" {
  command = plan

  variables {
    local_plain_http = true
  }

  assert {
    condition     = module.body_bucket.policy == "" && module.code_bucket.policy == ""
    error_message = "local_plain_http (moto over http://) leaves the TLS-only bucket policies out"
  }
}

run "local_stack_skips_the_body_lifecycle" {
  command = plan

  variables {
    local_fast_apply = true
  }

  assert {
    condition     = module.body_bucket.lifecycle_rule_ids == [] && module.body_bucket.versioning_status == "Enabled"
    error_message = "local_fast_apply (moto) leaves the body lifecycle out (the provider waits ~55 s for it) and keeps versioning"
  }
}

run "rejects_sub_minute_schedule" {
  command = plan

  variables {
    cleanup_schedule = "rate(30 seconds)"
  }

  expect_failures = [var.cleanup_schedule]
}

run "rejects_rate_with_wrong_unit_number" {
  command = plan

  variables {
    cleanup_schedule = "rate(1 minutes)"
  }

  expect_failures = [var.cleanup_schedule]
}

run "accepts_one_minute_schedule" {
  command = plan

  variables {
    cleanup_schedule = "rate(1 minute)"
  }

  assert {
    condition     = module.events.cleanup_schedule == "rate(1 minute)"
    error_message = "rate(1 minute) is EventBridge's finest schedule and must be accepted"
  }
}

run "anonymous_agents_are_an_explicit_choice" {
  command = plan

  variables {
    jwt_secret_ssm_parameter = ""
    allow_anonymous_agents   = true
  }

  assert {
    condition     = nonsensitive(module.functions["connect"].environment["REQUIRE_AUTH"]) == "false" && length(aws_ssm_parameter.jwt_secret) == 0
    error_message = "allow_anonymous_agents turns auth off and generates no secret"
  }

  assert {
    condition     = output.agent_auth.anonymous && !strcontains(output.ttf_command, "--token")
    error_message = "agent_auth says anonymous (make deploy warns); the ttf line has no token"
  }
}

run "jwks_with_audience" {
  command = plan

  variables {
    jwks_url     = "https://idp.example.com/.well-known/jwks.json"
    jwt_audience = "tunnel-client-id"
    jwt_issuer   = "https://idp.example.com/"
  }

  assert {
    condition     = nonsensitive(module.functions["connect"].environment["JWT_AUDIENCE"]) == "tunnel-client-id" && nonsensitive(module.functions["connect"].environment["JWKS_URL"]) == "https://idp.example.com/.well-known/jwks.json"
    error_message = "connect gets the JWKS URL and its audience"
  }
}

run "rejects_jwks_without_audience" {
  command = plan

  variables {
    jwks = "{\"keys\": []}"
  }

  expect_failures = [var.jwt_audience]
}

run "rejects_jwks_url_without_audience" {
  command = plan

  variables {
    jwks_url = "https://idp.example.com/.well-known/jwks.json"
  }

  expect_failures = [var.jwt_audience]
}

run "rejects_a_short_secret" {
  command = plan

  variables {
    jwt_secret = "only-31-characters-long-secret!"
  }

  expect_failures = [var.jwt_secret]
}

run "rejects_the_removed_require_auth" {
  command = plan

  variables {
    require_auth = false
  }

  expect_failures = [var.require_auth]
}

run "rejects_a_negative_max_lifetime" {
  command = plan

  variables {
    jwt_max_lifetime = -1
  }

  expect_failures = [var.jwt_max_lifetime]
}

run "public_edge_defaults_to_the_http_api" {
  command = plan

  assert {
    condition     = length(module.function_url) == 0 && output.function_url == null && output.function_url_invoke_statement == null
    error_message = "no function URL unless public_edge = function_url"
  }
}

run "function_url_edge_streams_from_forward_stream" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
  }

  assert {
    condition     = length(module.function_url) == 1 && module.function_url[0].invoke_mode == "RESPONSE_STREAM"
    error_message = "public_edge = function_url makes a streaming function URL"
  }

  assert {
    condition     = output.function_url_invoke_statement.function_name == "http-tunnel-forward-stream" && output.function_url_invoke_statement.invoked_via_function_url
    error_message = "the deploy is told which conditioned InvokeFunction statement to add, on forward_stream"
  }

  assert {
    condition     = module.functions["forward_stream"].reserved_concurrency == 50 && module.functions["forward"].reserved_concurrency == 50
    error_message = "the reservation bounds forward_stream (and forward) on this edge"
  }
}

run "function_url_edge_needs_a_reservation" {
  command = plan

  variables {
    public_edge = "function_url"
  }

  expect_failures = [var.public_edge]
}

run "rejects_an_unknown_public_edge" {
  command = plan

  variables {
    public_edge = "cloudfront"
  }

  expect_failures = [var.public_edge]
}

# issue 30 item 9 (kms.tf): who may use the deployment's key, decided by its key policy alone.
run "secrets_key" {
  command   = apply
  state_key = "secrets_key" # its own state: the overrides below apply to freshly created resources

  override_resource {
    target = aws_kms_key.secrets
    values = { arn = "arn:aws:kms:us-east-1:123456789012:key/secrets", key_id = "secrets" }
  }
  override_resource {
    target = module.functions["connect"].aws_iam_role.this
    values = { arn = "arn:aws:iam::123456789012:role/connect" }
  }
  override_resource {
    target = module.functions["forward"].aws_iam_role.this
    values = { arn = "arn:aws:iam::123456789012:role/forward" }
  }
  override_resource {
    target = module.functions["forward_stream"].aws_iam_role.this
    values = { arn = "arn:aws:iam::123456789012:role/forward_stream" }
  }
  override_resource {
    target = module.functions["response"].aws_iam_role.this
    values = { arn = "arn:aws:iam::123456789012:role/response" }
  }

  assert {
    condition     = aws_kms_key.secrets.enable_key_rotation == true && aws_kms_key.secrets.deletion_window_in_days == 7
    error_message = "the key rotates yearly"
  }

  assert {
    condition = toset(flatten([for st in jsondecode(aws_kms_key.secrets.policy).Statement : [
      for action in flatten([st.Action]) : "${st.Sid} ${action} ${join(",", flatten([st.Principal.AWS]))}"
      if contains(["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:CreateGrant", "kms:*"], action)
      ]])) == toset([
      "ConnectSealsWebhookSecrets kms:Encrypt arn:aws:iam::123456789012:role/connect",
      "ForwardOpensWebhookSecrets kms:Decrypt arn:aws:iam::123456789012:role/forward,arn:aws:iam::123456789012:role/forward_stream",
    ])
    error_message = "only connect encrypts and only forward/forward_stream decrypt webhook secrets; nobody may create grants (with own key material no SSM statement: the contract test covers the generated parameters)"
  }

  assert {
    condition = alltrue([for st in jsondecode(aws_kms_key.secrets.policy).Statement :
      st.Condition["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"] == ["connection", "tunnel"] &&
      st.Condition.Null["kms:EncryptionContext:tunnel"] == "false" && st.Condition.Null["kms:EncryptionContext:connection"] == "false"
      if contains(["ConnectSealsWebhookSecrets", "ForwardOpensWebhookSecrets"], st.Sid)
      ]) && alltrue([for st in jsondecode(aws_kms_key.secrets.policy).Statement :
      st.Condition.StringEquals["kms:ViaService"] == "ssm.us-east-1.amazonaws.com"
      if endswith(st.Sid, "ThroughSsm")
    ])
    error_message = "webhook secrets need the row's encryption context; parameters are used only through SSM"
  }

  assert {
    condition = (alltrue([for fn in ["connect", "forward", "forward_stream"] :
      nonsensitive(module.functions[fn].environment["SECRETS_KMS_KEY_ID"]) == "arn:aws:kms:us-east-1:123456789012:key/secrets"
      ]) && alltrue([for fn in ["disconnect", "cleanup", "stream_notifier", "response"] :
      !contains(keys(nonsensitive(module.functions[fn].environment)), "SECRETS_KMS_KEY_ID")
    ]))
    error_message = "connect, forward and forward_stream know the key; no other function does"
  }

  assert {
    condition     = alltrue([for fn in ["disconnect", "cleanup", "stream_notifier"] : !strcontains(module.functions[fn].policy, "kms:")])
    error_message = "cleanup, stream_notifier and disconnect have no KMS statement (and the key policy names none of them)"
  }
}

# ---------------------------------------------------------------- CloudFront (function_url + domain)

run "cloudfront_fronts_the_function_url_with_a_domain" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    domain_name                  = "t.example.com"
    certificate_arn              = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    hosted_zone_id               = "Z123"
    path_routing                 = false
  }

  assert {
    condition     = length(module.cloudfront) == 1 && length(module.function_url) == 1
    error_message = "a domain on the function_url edge puts CloudFront in front of the function URL"
  }

  assert {
    condition     = toset(keys(module.domain[0].targets)) == toset(["ws.t.example.com", "sockets.t.example.com"])
    error_message = "<domain> and *.<domain> are CloudFront's; API Gateway keeps only the WebSocket name"
  }

  assert {
    condition     = nonsensitive(module.functions["forward_stream"].environment["EDGE_ORIGIN_SECRET_SSM_PARAMETER"]) == "/http-tunnel/edge-origin-secret" && nonsensitive(module.functions["forward_stream"].environment["TUNNEL_DOMAIN"]) == "t.example.com"
    error_message = "forward_stream reads the secret's parameter and routes <id>.<domain>"
  }

  assert {
    condition     = alltrue([for fn in ["forward_stream", "caller_connect"] : one([for st in local.policy_statements[fn] : st.resources if st.sid == "EdgeOriginSecret"]) == ["arn:aws:ssm:us-east-1:123456789012:parameter/http-tunnel/edge-origin-secret"]]) && alltrue([for fn, statements in local.policy_statements : contains(["forward_stream", "caller_connect"], fn) || !anytrue([for st in statements : st.sid == "EdgeOriginSecret"])])
    error_message = "only forward_stream and caller_connect (handshakes CloudFront passes on, issue 24) may read the origin secret, and only that parameter"
  }

  assert {
    condition     = nonsensitive(module.functions["caller_connect"].environment["EDGE_ORIGIN_SECRET_SSM_PARAMETER"]) == "/http-tunnel/edge-origin-secret"
    error_message = "caller_connect reads the secret's parameter (handshakes CloudFront passes on)"
  }
}

run "no_cloudfront_without_a_domain" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
  }

  assert {
    condition     = length(module.cloudfront) == 0 && output.cloudfront == null && nonsensitive(module.functions["forward_stream"].environment["EDGE_ORIGIN_SECRET_SSM_PARAMETER"]) == "" && nonsensitive(module.functions["caller_connect"].environment["EDGE_ORIGIN_SECRET_SSM_PARAMETER"]) == ""
    error_message = "no domain (the local stack): no CloudFront, and forward_stream uses the function URL's own host and source IP"
  }

  assert {
    condition     = !anytrue([for st in local.policy_statements["forward_stream"] : st.sid == "EdgeOriginSecret"])
    error_message = "no secret to read without CloudFront"
  }
}

run "no_cloudfront_on_the_http_api_edge" {
  command = plan

  variables {
    domain_name     = "t.example.com"
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    aws_region      = "eu-west-1"
    path_routing    = false
  }

  assert {
    condition     = length(module.cloudfront) == 0 && toset(keys(module.domain[0].targets)) == toset(["t.example.com", "*.t.example.com", "ws.t.example.com", "sockets.t.example.com"])
    error_message = "the http_api edge keeps its three API Gateway names and needs no us-east-1 certificate"
  }
}

run "cloudfront_needs_a_us_east_1_certificate" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    domain_name                  = "t.example.com"
    certificate_arn              = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    aws_region                   = "eu-west-1"
    path_routing                 = false
  }

  expect_failures = [var.cloudfront_certificate_arn]
}

run "cloudfront_takes_its_own_certificate_outside_us_east_1" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    domain_name                  = "t.example.com"
    certificate_arn              = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    cloudfront_certificate_arn   = "arn:aws:acm:us-east-1:123456789012:certificate/def"
    aws_region                   = "eu-west-1"
    path_routing                 = false
  }

  assert {
    condition     = module.cloudfront[0].secret_parameter_name == "/http-tunnel/edge-origin-secret" && local.cloudfront_certificate_arn == "arn:aws:acm:us-east-1:123456789012:certificate/def"
    error_message = "the regional certificate stays API Gateway's (WebSocket), the us-east-1 one is CloudFront's"
  }
}

# ---------------------------------------------------------------- WAF (issue 29): only on the CloudFront edge

run "waf_is_attached_to_the_cloudfront_distribution" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    domain_name                  = "t.example.com"
    certificate_arn              = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    cloudfront_certificate_arn   = "arn:aws:acm:us-east-1:123456789012:certificate/def"
    aws_region                   = "eu-west-1"
    path_routing                 = false
    waf_enabled                  = true
    waf_per_ip_limit             = 300
  }

  assert {
    condition     = length(module.waf) == 1 && module.waf[0].scope == "CLOUDFRONT" && module.waf[0].region == "us-east-1"
    error_message = "a CLOUDFRONT-scope ACL, created through us-east-1 although the stack is in eu-west-1"
  }

  assert {
    condition     = module.cloudfront[0].web_acl_id == module.waf[0].web_acl_arn && output.web_acl_arn == "arn:aws:wafv2:us-east-1:123456789012:global/webacl/http-tunnel-edge/a1b2c3d4"
    error_message = "the distribution's web_acl_id is the ACL's ARN (what CloudFront takes for WAFv2)"
  }
}

run "no_waf_by_default_on_the_cloudfront_edge" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    domain_name                  = "t.example.com"
    certificate_arn              = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    path_routing                 = false
  }

  assert {
    condition     = length(module.waf) == 0 && module.cloudfront[0].web_acl_id == null && output.web_acl_arn == ""
    error_message = "waf_enabled is off by default: no ACL, nothing attached"
  }
}

run "waf_refused_on_the_http_api_edge" {
  command = plan

  variables {
    domain_name     = "t.example.com"
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    path_routing    = false
    waf_enabled     = true
  }

  expect_failures = [var.waf_enabled]
}

run "waf_refused_without_a_domain" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    waf_enabled                  = true
  }

  expect_failures = [var.waf_enabled]
}

run "waf_refused_beside_an_operators_own_acl" {
  command = plan

  variables {
    public_edge                  = "function_url"
    forward_reserved_concurrency = 50
    domain_name                  = "t.example.com"
    certificate_arn              = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    path_routing                 = false
    waf_enabled                  = true
    cloudfront_web_acl_id        = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/mine/e5f6"
  }

  expect_failures = [var.waf_enabled]
}
