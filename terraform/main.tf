# http-tunnel: the whole stack. Modules hold the resources; this file holds the wiring
# that is a contract with the code: which function gets which environment variables
# (shared/README.md) and which AWS actions (tests/infra/test_contract.py checks both
# against what the handlers really do).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  build_dir = var.build_dir != "" ? var.build_dir : "${path.root}/../build"

  functions = ["connect", "disconnect", "response", "forward", "forward_stream", "cleanup", "stream_notifier", "caller_connect", "caller_message", "caller_disconnect"]
  function_names = {
    for fn in local.functions : fn => "${var.name_prefix}-${replace(fn, "_", "-")}"
  }
  function_defaults = {
    connect         = { memory_size = 256, timeout = 10, description = "WebSocket $connect: authenticate the agent, assign a tunnel id" }
    disconnect      = { memory_size = 128, timeout = 10, description = "WebSocket $disconnect: drop the connection row" }
    response        = { memory_size = 256, timeout = 15, description = "WebSocket $default: agent messages (ready, ping, http_response, error)" }
    forward         = { memory_size = 512, timeout = 29, description = "HTTP $default: send the request down the tunnel and wait for the answer" }
    forward_stream  = { memory_size = 512, timeout = var.max_stream_seconds + 15, description = "Function URL (RESPONSE_STREAM): send the request down the tunnel, stream the answer" }
    cleanup         = { memory_size = 256, timeout = 120, description = "Schedule: remove expired connection and pending rows" }
    stream_notifier = { memory_size = 128, timeout = 30, description = "DynamoDB stream: publish completed requests to EventBridge" }
    # Caller WebSockets (issue 24): caller_connect waits for the agent at most 20 s (httptunnel.caller_ws), inside the 29 s integration limit
    caller_connect    = { memory_size = 256, timeout = 29, description = "Caller WebSocket $connect: route to the tunnel, ask the agent to open the local socket, wait" }
    caller_message    = { memory_size = 256, timeout = 10, description = "Caller WebSocket $default: number a caller frame and send it to the agent" }
    caller_disconnect = { memory_size = 128, timeout = 10, description = "Caller WebSocket $disconnect: tell the agent the caller's close code" }
  }

  custom_domain         = var.domain_name != ""
  websocket_domain_name = var.websocket_domain_name != "" ? var.websocket_domain_name : "ws.${var.domain_name}"
  wildcard              = local.custom_domain && var.wildcard_domain

  # Subdomains only by default once a wildcard domain gives every tunnel its own origin (issue 30).
  path_routing = var.path_routing == null ? !local.wildcard : var.path_routing

  public_http_url = (
    var.public_http_url_override != "" ? var.public_http_url_override :
    local.custom_domain ? "https://${var.domain_name}" : module.http_api.api_endpoint
  )
  ws_management_endpoint = (
    var.ws_management_endpoint_override != "" ? var.ws_management_endpoint_override : module.websocket_api.management_endpoint
  )
  caller_ws_management_endpoint = module.caller_websocket_api.management_endpoint
  tunnel_domain                 = var.tunnel_domain != "" ? var.tunnel_domain : local.wildcard ? var.domain_name : ""

  # Agent authentication (on unless allow_anonymous_agents). Without HS key material of the
  # operator's own, Terraform generates the HS256 secret and names issuer and audience.
  own_hs_secret            = nonsensitive(var.jwt_secret != "") || var.jwt_secret_ssm_parameter != "" || var.jwt_secret_arn != "" # whether one is set is no secret
  generate_jwt_secret      = !var.allow_anonymous_agents && !local.own_hs_secret
  jwt_secret_ssm_parameter = local.generate_jwt_secret ? aws_ssm_parameter.jwt_secret[0].name : var.jwt_secret_ssm_parameter
  jwt_issuer               = var.jwt_issuer != "" ? var.jwt_issuer : local.generate_jwt_secret ? var.name_prefix : ""
  jwt_audience             = var.jwt_audience != "" ? var.jwt_audience : local.generate_jwt_secret ? "${var.name_prefix}-agents" : ""
  generate_request_id_key  = var.request_id_key_ssm_prefix == ""
  request_id_key_prefix    = local.generate_request_id_key ? "/${var.name_prefix}/request-id-key-" : var.request_id_key_ssm_prefix
  request_id_key_arns = [
    for slot in [0, 1] : "arn:${data.aws_partition.current.partition}:ssm:${var.aws_region}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(local.request_id_key_prefix, "/")}${slot}"
  ]
  subdomain_url_template = var.subdomain_url_template != "" ? var.subdomain_url_template : local.wildcard ? "https://{tunnel_id}.${var.domain_name}" : ""

  forward_environment = merge(local.fairness_forward_environment, {
    CONNECTIONS_TABLE      = module.tables.connections_table_name
    PENDING_TABLE          = module.tables.pending_table_name
    WS_MANAGEMENT_ENDPOINT = local.ws_management_endpoint
    PUBLIC_HTTP_URL        = local.public_http_url
    TUNNEL_DOMAIN          = local.tunnel_domain
    PATH_ROUTING           = tostring(local.path_routing)
    BODY_BUCKET            = module.body_bucket.bucket_name
    PATH_REFERER_ROUTING   = tostring(var.path_referer_routing)
    LOG_LEVEL              = var.log_level
    # channel v2 request ids (shared/README.md): the SSM slots and the version to mint with
    REQUEST_ID_KEY_SSM_PREFIX = local.request_id_key_prefix
    REQUEST_ID_KEY_VERSION    = tostring(var.request_id_key_version)
  })

  # Environment per function: exactly the variables its code reads (shared/README.md).
  # Optional settings are always present (empty = off) so the set never depends on inputs.
  environment = {
    connect = {
      CONNECTIONS_TABLE        = module.tables.connections_table_name
      REQUIRE_AUTH             = tostring(!var.allow_anonymous_agents)
      JWT_SECRET               = var.jwt_secret
      JWT_SECRET_SSM_PARAMETER = local.jwt_secret_ssm_parameter
      JWT_SECRET_ARN           = var.jwt_secret_arn
      JWKS                     = var.jwks
      JWKS_URL                 = var.jwks_url
      JWT_ISSUER               = local.jwt_issuer
      JWT_AUDIENCE             = local.jwt_audience
      JWT_SUBDOMAINS_CLAIM     = var.jwt_subdomains_claim
      JWT_MAX_LIFETIME         = tostring(var.jwt_max_lifetime)
      LOG_LEVEL                = var.log_level
    }
    disconnect = {
      CONNECTIONS_TABLE = module.tables.connections_table_name
      LOG_LEVEL         = var.log_level
    }
    response = merge(local.fairness_response_environment, {
      CONNECTIONS_TABLE      = module.tables.connections_table_name
      PENDING_TABLE          = module.tables.pending_table_name
      WS_MANAGEMENT_ENDPOINT = local.ws_management_endpoint
      PUBLIC_HTTP_URL        = local.public_http_url
      TUNNEL_DOMAIN          = local.tunnel_domain
      SUBDOMAIN_URL_TEMPLATE = local.subdomain_url_template
      PATH_ROUTING           = tostring(local.path_routing)
      LOG_LEVEL              = var.log_level
      # channel v2 request ids (shared/README.md): the SSM slots and the version to mint with
      REQUEST_ID_KEY_SSM_PREFIX = local.request_id_key_prefix
      REQUEST_ID_KEY_VERSION    = tostring(var.request_id_key_version)
      # caller WebSockets: the agent's ws_message frames are posted to the caller API's sockets
      CALLER_WS_MANAGEMENT_ENDPOINT = local.caller_ws_management_endpoint
    })
    forward = local.forward_environment
    # The function URL edge: forward's settings, the stream's cap, and the layer's Runtime API
    # loop as its runtime (Python has no native streaming handler: shared/README.md "The live web").
    # PUBLIC_HTTP_URL is empty on AWS (a function URL is https on 443), the local stack's stream_url there.
    forward_stream = merge(local.forward_environment, local.fairness_stream_environment, {
      PUBLIC_HTTP_URL         = var.public_stream_url_override
      MAX_STREAM_SECONDS      = tostring(var.max_stream_seconds)
      AWS_LAMBDA_EXEC_WRAPPER = "/opt/python/httptunnel/runtime_bootstrap" # httptunnel.names.STREAM_WRAPPER
    }, local.edge_origin_environment)
    cleanup = {
      CONNECTIONS_TABLE        = module.tables.connections_table_name
      PENDING_TABLE            = module.tables.pending_table_name
      WS_MANAGEMENT_ENDPOINT   = local.ws_management_endpoint
      JWT_SECRET_SSM_PARAMETER = local.jwt_secret_ssm_parameter # its version only: rotated-out rows are closed
      LOG_LEVEL                = var.log_level
    }
    stream_notifier = {
      CONNECTIONS_TABLE = module.tables.connections_table_name
      EVENT_BUS_NAME    = module.events.event_bus_name
      LOG_LEVEL         = var.log_level
    }
    # Caller WebSockets (shared/README.md "Caller WebSockets")
    caller_connect = merge({
      CONNECTIONS_TABLE         = module.tables.connections_table_name
      PENDING_TABLE             = module.tables.pending_table_name
      WS_MANAGEMENT_ENDPOINT    = local.ws_management_endpoint
      CALLER_WS_DOMAIN          = local.tunnel_domain
      PATH_ROUTING              = tostring(local.path_routing)
      PUBLIC_HTTP_URL           = "" # the caller API is wss on 443: X-Forwarded-Proto https, port 443
      REQUEST_ID_KEY_SSM_PREFIX = local.request_id_key_prefix
      REQUEST_ID_KEY_VERSION    = tostring(var.request_id_key_version)
      LOG_LEVEL                 = var.log_level
    }, local.edge_origin_environment) # handshakes CloudFront passes on: httptunnel.caller_ws.through_cloudfront
    caller_message = {
      CONNECTIONS_TABLE             = module.tables.connections_table_name
      WS_MANAGEMENT_ENDPOINT        = local.ws_management_endpoint
      CALLER_WS_MANAGEMENT_ENDPOINT = local.caller_ws_management_endpoint
      LOG_LEVEL                     = var.log_level
    }
    caller_disconnect = {
      CONNECTIONS_TABLE      = module.tables.connections_table_name
      WS_MANAGEMENT_ENDPOINT = local.ws_management_endpoint
      LOG_LEVEL              = var.log_level
    }
  }

  # IAM per function: exactly the AWS actions its code performs (plus what the Lambda
  # service does on its behalf: reading the stream for stream_notifier).
  connections_arn  = module.tables.connections_table_arn
  tunnel_index_arn = module.tables.tunnel_index_arn
  pending_arn      = module.tables.pending_table_arn
  connections_api  = "${module.websocket_api.execution_arn}/${var.websocket_stage_name}"
  callers_api      = "${module.caller_websocket_api.execution_arn}/${var.caller_websocket_stage_name}"
  body_objects     = [for p in ["req/", "resp/"] : "${module.body_bucket.bucket_arn}/${p}*"]
  response_objects = "${module.body_bucket.bucket_arn}/resp/*"
  ssm_parameter_arn = (
    local.generate_jwt_secret ? aws_ssm_parameter.jwt_secret[0].arn :
    "arn:${data.aws_partition.current.partition}:ssm:${var.aws_region}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(var.jwt_secret_ssm_parameter, "/")}"
  )

  forward_statements = [
    { sid = "Connections", actions = ["dynamodb:GetItem", "dynamodb:DeleteItem"], resources = [local.connections_arn] },
    { sid = "TunnelIndex", actions = ["dynamodb:Query"], resources = [local.tunnel_index_arn] },
    { sid = "Pending", actions = ["dynamodb:GetItem", "dynamodb:PutItem"], resources = [local.pending_arn] },
    { sid = "PostToAgent", actions = ["execute-api:ManageConnections"], resources = ["${local.connections_api}/POST/@connections/*", "${local.connections_api}/GET/@connections/*"] },
    { sid = "Bodies", actions = ["s3:PutObject", "s3:GetObject"], resources = local.body_objects },
    { sid = "PinnedResponseBodies", actions = ["s3:GetObjectVersion"], resources = [local.response_objects] },
    { sid = "RequestIdKeys", actions = ["ssm:GetParameters"], resources = local.request_id_key_arns },
    # S3 answers HeadObject of a missing key with 404 only to a caller allowed to list the
    # bucket, else 403: without this, an agent's missing upload was an unexplained S3 error.
    # Not limited by s3:prefix: a HEAD's request carries no prefix for the condition to match.
    { sid = "MissingBodiesAre404", actions = ["s3:ListBucket"], resources = [module.body_bucket.bucket_arn] },
  ]

  policy_statements = {
    connect = concat(
      [
        { sid = "Connections", actions = ["dynamodb:PutItem"], resources = [local.connections_arn] },
      ],
      local.generate_jwt_secret || var.jwt_secret_ssm_parameter != "" ? [{ sid = "JwtSecretParameter", actions = ["ssm:GetParameter"], resources = [local.ssm_parameter_arn] }] : [],
      var.jwt_secret_arn == "" ? [] : [{ sid = "JwtSecret", actions = ["secretsmanager:GetSecretValue"], resources = [var.jwt_secret_arn] }],
    )
    disconnect = [
      { sid = "Connections", actions = ["dynamodb:DeleteItem"], resources = [local.connections_arn] },
    ]
    response = [
      # UpdateItem/DeleteItem: caller sockets' rows (ordering and ownership of ws_message, ws_close)
      { sid = "Connections", actions = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], resources = [local.connections_arn] },
      { sid = "Pending", actions = ["dynamodb:GetItem", "dynamodb:PutItem"], resources = [local.pending_arn] },
      { sid = "PostToAgent", actions = ["execute-api:ManageConnections"], resources = ["${local.connections_api}/POST/@connections/*", "${local.connections_api}/DELETE/@connections/*"] },
      { sid = "PostToCaller", actions = ["execute-api:ManageConnections"], resources = ["${local.callers_api}/POST/@connections/*", "${local.callers_api}/DELETE/@connections/*"] },
      { sid = "RequestIdKeys", actions = ["ssm:GetParameters"], resources = local.request_id_key_arns },
    ]
    forward = local.forward_statements
    # forward's, plus what relaying a streamed answer does (issue 23): delete the frames it read
    # (BatchWriteItem) and the segment versions it read (a versioned DeleteObject is DeleteObjectVersion),
    # plus CloudFront's secret (edge_origin_statements: empty without a domain)
    forward_stream = concat(local.forward_statements, [
      { sid = "StreamFramesRead", actions = ["dynamodb:BatchWriteItem"], resources = [local.pending_arn] },
      # the open-request leases (httptunnel.stream_holds, items "holds#<tunnel id>", "holds#sub#<digest>"); no
      # more than the PutItem it already has on this table
      { sid = "StreamHolds", actions = ["dynamodb:UpdateItem"], resources = [local.pending_arn] },
      { sid = "StreamSegmentsRead", actions = ["s3:DeleteObjectVersion"], resources = [local.response_objects] },
    ], local.edge_origin_statements)
    cleanup = concat(
      [
        { sid = "Connections", actions = ["dynamodb:Scan", "dynamodb:DeleteItem"], resources = [local.connections_arn] },
        { sid = "Pending", actions = ["dynamodb:Scan", "dynamodb:DeleteItem"], resources = [local.pending_arn] },
        { sid = "ProbeAgents", actions = ["execute-api:ManageConnections"], resources = ["${local.connections_api}/GET/@connections/*", "${local.connections_api}/DELETE/@connections/*"] },
      ],
      # GetParameter without decryption: the version, never the secret (no kms:Decrypt on aws/ssm)
      local.generate_jwt_secret || var.jwt_secret_ssm_parameter != "" ? [{ sid = "JwtSecretVersion", actions = ["ssm:GetParameter"], resources = [local.ssm_parameter_arn] }] : [],
    )
    # plus CloudFront's secret (edge_origin_statements: empty without a domain on the function URL edge)
    caller_connect = concat([
      { sid = "Connections", actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"], resources = [local.connections_arn] },
      { sid = "TunnelIndex", actions = ["dynamodb:Query"], resources = [local.tunnel_index_arn] },
      { sid = "Pending", actions = ["dynamodb:GetItem", "dynamodb:PutItem"], resources = [local.pending_arn] },
      { sid = "PostToAgent", actions = ["execute-api:ManageConnections"], resources = ["${local.connections_api}/POST/@connections/*", "${local.connections_api}/GET/@connections/*"] },
      { sid = "RequestIdKeys", actions = ["ssm:GetParameters"], resources = local.request_id_key_arns },
    ], local.edge_origin_statements)
    caller_message = [
      { sid = "Connections", actions = ["dynamodb:UpdateItem", "dynamodb:DeleteItem"], resources = [local.connections_arn] },
      { sid = "PostToAgent", actions = ["execute-api:ManageConnections"], resources = ["${local.connections_api}/POST/@connections/*"] },
      { sid = "CloseCaller", actions = ["execute-api:ManageConnections"], resources = ["${local.callers_api}/DELETE/@connections/*"] },
    ]
    caller_disconnect = [
      { sid = "Connections", actions = ["dynamodb:DeleteItem"], resources = [local.connections_arn] },
      { sid = "PostToAgent", actions = ["execute-api:ManageConnections"], resources = ["${local.connections_api}/POST/@connections/*"] },
    ]
    stream_notifier = [
      { sid = "PublishEvents", actions = ["events:PutEvents"], resources = [module.events.event_bus_arn] },
      { sid = "TunnelOfAnswer", actions = ["dynamodb:BatchGetItem"], resources = [local.connections_arn] },
      { sid = "ReadStream", actions = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"], resources = [module.tables.pending_stream_arn] },
    ]
  }

  # New answer rows (written once, never modified; TTL removals are REMOVE and filtered out).
  stream_filter = {
    eventName = ["INSERT"]
    dynamodb  = { NewImage = { status = { S = ["completed", "error"] } } }
  }
}

# The HS256 key of agent tokens, unless the operator brings key material: 64 random characters
# from Secrets Manager's generator (an ephemeral resource: never in plan or state), written
# write-only (value_wo: never in state either) into an SSM SecureString under the deployment's key (kms.tf).
# The connect Lambda reads it at cold start, `make token` to sign; no Lambda environment holds it.
# Rotate by increasing jwt_secret_version.
ephemeral "aws_secretsmanager_random_password" "jwt_secret" {
  count    = local.generate_jwt_secret ? 1 : 0
  provider = aws.secret_generator

  password_length     = 64
  exclude_punctuation = true
}

resource "aws_ssm_parameter" "jwt_secret" {
  count = local.generate_jwt_secret ? 1 : 0

  name             = "/${var.name_prefix}/agent-jwt-secret"
  description      = "HS256 key of http-tunnel agent tokens (connect verifies, make token signs)"
  type             = "SecureString"
  key_id           = aws_kms_key.secrets.arn # kms.tf: only connect (and the account's IAM, through SSM) may decrypt
  value_wo         = ephemeral.aws_secretsmanager_random_password.jwt_secret[0].random_password
  value_wo_version = var.jwt_secret_version

  # key_id only on create: a changed key_id alone makes the provider PutParameter with the value it
  # does not hold (value_wo; hashicorp/terraform-provider-aws internal/service/ssm/parameter.go,
  # resourceParameterUpdate). Existing deployments move to the key with -replace (terraform/README.md).
  lifecycle {
    ignore_changes = [key_id]
  }
}

# Channel v2 request-id keys (shared/README.md "Request ids"): two SecureStrings, version N's key in
# slot N mod 2, so after a rotation the other slot still holds the previous version's key. Written
# write-only like the JWT secret (never in plan or state); forward and response read both with one
# GetParameters per container. Rotate by increasing request_id_key_version: only the new version's
# slot is rewritten, and the changed REQUEST_ID_KEY_VERSION gives both functions new containers.
ephemeral "aws_secretsmanager_random_password" "request_id_key" {
  count    = local.generate_request_id_key ? 2 : 0
  provider = aws.secret_generator

  password_length     = 64
  exclude_punctuation = true
}

resource "aws_ssm_parameter" "request_id_key" {
  count = local.generate_request_id_key ? 2 : 0

  name             = "${local.request_id_key_prefix}${count.index}"
  description      = "http-tunnel request id HMAC key, slot ${count.index} (versions with N mod 2 = ${count.index}); forward mints, response verifies"
  type             = "SecureString"
  key_id           = aws_kms_key.secrets.arn # kms.tf: only forward, forward_stream and response may decrypt
  value_wo         = ephemeral.aws_secretsmanager_random_password.request_id_key[count.index].random_password
  value_wo_version = var.request_id_key_version - ((var.request_id_key_version - count.index) % 2)

  # key_id only on create: a changed key_id alone makes the provider PutParameter with the value it
  # does not hold (value_wo; hashicorp/terraform-provider-aws internal/service/ssm/parameter.go,
  # resourceParameterUpdate). Existing deployments move to the key with -replace (terraform/README.md).
  lifecycle {
    ignore_changes = [key_id]
  }
}

module "tables" {
  source = "./modules/tables"

  name_prefix            = var.name_prefix
  point_in_time_recovery = var.point_in_time_recovery
}

# Two private buckets, one module (modules/private_bucket): bodies, and apart from them the code,
# so that nothing an agent or a caller gets a presigned URL for shares a bucket with code.
locals {
  # Every body (req/, resp/: httptunnel.names.REQUEST_BODY_PREFIX, RESPONSE_BODY_PREFIX) is deleted
  # within a day (S3's smallest unit), its old versions too.
  body_lifecycle_rules = [
    { id = "expire-request-bodies", prefix = "req/", expiration_days = 1, noncurrent_days = 1 },
    { id = "expire-response-bodies", prefix = "resp/", expiration_days = 1, noncurrent_days = 1 },
    { id = "remove-expired-delete-markers", expired_object_delete_marker = true },
    { id = "abort-incomplete-uploads", abort_incomplete_upload_days = 1 },
  ]
}

module "body_bucket" {
  source = "./modules/private_bucket"

  bucket_prefix   = "${var.name_prefix}-bodies-"
  versioning      = true
  lifecycle_rules = [for rule in local.body_lifecycle_rules : rule if !var.local_fast_apply]
  tls_only_policy = !var.local_plain_http
}

module "code_bucket" {
  source = "./modules/private_bucket"

  bucket_prefix   = "${var.name_prefix}-code-"
  tls_only_policy = !var.local_plain_http
}

# Until the buckets shared modules/private_bucket (body_bucket and code_bucket were modules of
# their own) the body bucket's versioning had no count: its state moves, nothing is replaced.
moved {
  from = module.body_bucket.aws_s3_bucket_versioning.this
  to   = module.body_bucket.aws_s3_bucket_versioning.this[0]
}

# The code reaches Lambda through S3 (code/ in the code bucket): the provider uploads local
# zips given as `filename` one function at a time, waiting ~5 s after each; from S3 the six
# functions are created in parallel.
locals {
  code_zips = merge(
    { layer = "${local.build_dir}/layer.zip" },
    { for fn in local.functions : fn => "${local.build_dir}/functions/${fn}.zip" },
  )
}

resource "aws_s3_object" "code" {
  #checkov:skip=CKV_AWS_186:the bucket encrypts every object with SSE-S3 by default; KMS would add a key and grants for build artifacts
  for_each = local.code_zips

  bucket      = module.code_bucket.bucket_name
  key         = "code/${each.key}.zip"
  source      = each.value
  source_hash = filemd5(each.value)
}

resource "aws_lambda_layer_version" "this" {
  layer_name               = "${var.name_prefix}-httptunnel"
  description              = "httptunnel package + pyjwt + cryptography for ${var.lambda_runtime} ${var.lambda_architecture}"
  s3_bucket                = aws_s3_object.code["layer"].bucket
  s3_key                   = aws_s3_object.code["layer"].key
  source_code_hash         = filebase64sha256("${local.build_dir}/layer.zip")
  compatible_runtimes      = [var.lambda_runtime]
  compatible_architectures = [var.lambda_architecture]
}

module "functions" {
  source   = "./modules/function"
  for_each = toset(local.functions)

  function_name        = local.function_names[each.key]
  description          = local.function_defaults[each.key].description
  handler              = "handler.handler"
  runtime              = var.lambda_runtime
  architecture         = var.lambda_architecture
  memory_size          = coalesce(try(var.function_settings[each.key].memory_size, null), local.function_defaults[each.key].memory_size)
  timeout              = coalesce(try(var.function_settings[each.key].timeout, null), local.function_defaults[each.key].timeout)
  reserved_concurrency = coalesce(contains(["forward", "forward_stream"], each.key) ? var.forward_reserved_concurrency : null, try(var.function_settings[each.key].reserved_concurrency, null), -1)
  tracing_mode         = var.lambda_tracing_mode
  filename             = local.code_zips[each.key]
  s3_bucket            = aws_s3_object.code[each.key].bucket
  s3_key               = aws_s3_object.code[each.key].key
  layers               = [aws_lambda_layer_version.this.arn]
  environment          = merge(local.environment[each.key], lookup(local.kms_environment, each.key, {}), lookup(local.fairness_caller_environment, each.key, {})) # kms.tf, fairness.tf
  policy_statements    = concat(local.policy_statements[each.key], lookup(local.kms_statements, each.key, []))                                                    # kms.tf
  log_retention_days   = var.log_retention_days
  snap_start           = var.snap_start && each.key != "forward_stream" # off until the wrapper is verified with it on AWS
}

module "websocket_api" {
  source = "./modules/websocket_api"

  name       = "${var.name_prefix}-agents"
  stage_name = var.websocket_stage_name
  routes = {
    "$connect"    = { function_name = module.functions["connect"].function_name, invoke_arn = module.functions["connect"].invoke_arn, qualifier = module.functions["connect"].qualifier }
    "$disconnect" = { function_name = module.functions["disconnect"].function_name, invoke_arn = module.functions["disconnect"].invoke_arn, qualifier = module.functions["disconnect"].qualifier }
    "$default"    = { function_name = module.functions["response"].function_name, invoke_arn = module.functions["response"].invoke_arn, qualifier = module.functions["response"].qualifier }
  }
  throttling_burst_limit = var.websocket_throttling_burst_limit
  throttling_rate_limit  = var.websocket_throttling_rate_limit
  route_throttles = {
    "$connect" = { burst_limit = var.websocket_connect_throttling_burst_limit, rate_limit = var.websocket_connect_throttling_rate_limit }
  }
}

# Caller WebSockets (issue 24): the same module, a second API. Its $connect has its own throttle,
# kept with the agents' under the account's 500 new connections per second (variables.tf).
module "caller_websocket_api" {
  source = "./modules/websocket_api"

  name       = "${var.name_prefix}-callers"
  stage_name = var.caller_websocket_stage_name
  routes = {
    "$connect"    = { function_name = module.functions["caller_connect"].function_name, invoke_arn = module.functions["caller_connect"].invoke_arn, qualifier = module.functions["caller_connect"].qualifier }
    "$disconnect" = { function_name = module.functions["caller_disconnect"].function_name, invoke_arn = module.functions["caller_disconnect"].invoke_arn, qualifier = module.functions["caller_disconnect"].qualifier }
  }
  # $default: caller frames into the FIFO queue caller_message reads, in order (caller_queue.tf)
  service_integrations   = { "$default" = local.caller_frames_integration }
  throttling_burst_limit = var.caller_message_throttling_burst_limit
  throttling_rate_limit  = var.caller_message_throttling_rate_limit
  route_throttles = {
    "$connect" = { burst_limit = var.caller_connect_throttling_burst_limit, rate_limit = var.caller_connect_throttling_rate_limit }
  }
}

module "http_api" {
  source = "./modules/http_api"

  name                   = "${var.name_prefix}-public"
  function_name          = module.functions["forward"].function_name
  invoke_arn             = module.functions["forward"].invoke_arn
  qualifier              = module.functions["forward"].qualifier
  throttling_burst_limit = var.http_throttling_burst_limit
  throttling_rate_limit  = var.http_throttling_rate_limit
  log_retention_days     = var.log_retention_days
  # Subdomains only: the execute-api URL would be a path-mode origin shared by every tunnel.
  disable_execute_api_endpoint = local.custom_domain && !local.path_routing
}

locals {
  # Where the budget alarm goes: the stack's own alarm topic (modules/observability, whose policy
  # lets AWS Budgets publish), unless alarm_topic_arn names another.
  alarm_topic_arn = var.alarm_topic_arn != "" ? var.alarm_topic_arn : module.observability.alarm_topic_arn
}

module "budget" {
  source = "./modules/budget"
  count  = var.budget_monthly_usd == null ? 0 : 1

  name        = "${var.name_prefix}-monthly"
  monthly_usd = var.budget_monthly_usd
  topic_arn   = local.alarm_topic_arn
}

module "events" {
  source = "./modules/events"

  name                       = var.name_prefix
  event_source               = "http-tunnel"
  traffic_log_retention_days = var.log_retention_days
  cleanup_schedule           = var.cleanup_schedule
  cleanup_function_name      = module.functions["cleanup"].function_name
  cleanup_function_arn       = module.functions["cleanup"].function_arn
  cleanup_qualifier          = module.functions["cleanup"].qualifier
}

# The traffic log (var.traffic_log): answer rows only; the handler reports partial batch
# failures. Without it there is no mapping, so no stream record ever invokes anything.
resource "aws_lambda_event_source_mapping" "this" {
  count = var.traffic_log ? 1 : 0

  event_source_arn                   = module.tables.pending_stream_arn
  function_name                      = module.functions["stream_notifier"].function_arn
  starting_position                  = "LATEST"
  batch_size                         = 100
  maximum_batching_window_in_seconds = 1
  maximum_retry_attempts             = 5
  bisect_batch_on_function_error     = true
  function_response_types            = ["ReportBatchItemFailures"]

  filter_criteria {
    filter {
      pattern = jsonencode(local.stream_filter)
    }
  }
}

module "domain" {
  source = "./modules/domain"
  count  = local.custom_domain ? 1 : 0

  domain_name           = var.domain_name
  websocket_domain_name = local.websocket_domain_name
  wildcard              = var.wildcard_domain
  certificate_arn       = var.certificate_arn
  hosted_zone_id        = var.hosted_zone_id
  http_api_id           = module.http_api.api_id
  http_stage_id         = module.http_api.stage_id
  websocket_api_id      = module.websocket_api.api_id
  websocket_stage_id    = module.websocket_api.stage_id
  http_names            = !local.cloudfront # with CloudFront in front, <domain> and *.<domain> are its

  caller_websocket_domain_name = var.caller_websocket_domain_name != "" ? var.caller_websocket_domain_name : "sockets.${var.domain_name}"
  caller_websocket_api_id      = module.caller_websocket_api.api_id
  caller_websocket_stage_id    = module.caller_websocket_api.stage_id
}

# ---------------------------------------------------------------- observability
# Alarms, dashboard and the alarm topic (modules/observability). The error codes are
# httptunnel.names.ERROR_CODES (tests/infra/test_contract.py checks this copy).
locals {
  tunnel_error_codes = {
    invalid_request           = 400
    basic_auth_required       = 401
    ip_denied                 = 403
    edge_bypass               = 403
    webhook_signature_invalid = 403
    tunnel_not_found          = 404
    payload_too_large         = 413
    tunnel_busy               = 429
    basic_auth_throttled      = 429
    tunnel_rate_limited       = 429
    websocket_unsupported     = 501
    agent_gone                = 502
    internal_error            = 502
    local_service_error       = 502
    response_too_large        = 502
    local_service_unavailable = 503
    timeout                   = 504
  }
}

module "observability" {
  source = "./modules/observability"

  name_prefix                  = var.name_prefix
  aws_region                   = var.aws_region
  partition                    = data.aws_partition.current.partition
  alarms_enabled               = var.alarms_enabled
  dashboard_enabled            = var.dashboard_enabled
  alarm_email                  = var.alarm_email
  thresholds                   = var.alarm_thresholds
  account_concurrency_limit    = var.lambda_concurrency_limit
  error_codes                  = local.tunnel_error_codes
  function_names               = { for fn, m in module.functions : fn => m.function_name }
  forward_log_group_name       = module.functions["forward"].log_group_name
  cleanup_log_group_name       = module.functions["cleanup"].log_group_name
  forward_reserved_concurrency = module.functions["forward"].reserved_concurrency
  http_api_id                  = module.http_api.api_id
  http_stage_name              = module.http_api.stage_name
  websocket_api_id             = module.websocket_api.api_id
  websocket_stage_name         = module.websocket_api.stage_name
  tables = {
    connections = { name = module.tables.connections_table_name, indexes = ["tunnel-id-index"] }
    pending     = { name = module.tables.pending_table_name }
  }
  answers_table = module.tables.pending_table_name
}

# The function URL edge (public_edge = "function_url"; issue 23), in front of forward_stream; the
# lambda:InvokeFunction statement conditioned on
# lambda:InvokedViaFunctionUrl is added by the deploy (module output invoke_function_statement).
module "function_url" {
  source = "./modules/function_url"
  count  = var.public_edge == "function_url" ? 1 : 0

  function_name = module.functions["forward_stream"].function_name
  qualifier     = module.functions["forward_stream"].qualifier
  invoke_mode   = "RESPONSE_STREAM"
}

# Upgrade note (issue 30): with a wildcard domain, path_routing now defaults to false, which also
# switches the execute-api URL off (disable_execute_api_endpoint). Said at every plan until the
# operator chooses explicitly.
check "path_routing_default" {
  assert {
    condition     = !(var.path_routing == null && var.domain_name != "" && var.wildcard_domain)
    error_message = "path_routing is unset with a wildcard domain: tunnels get subdomain URLs only, /<id>/ path URLs answer 404 and the execute-api URL is switched off (the default changed: path mode shares one origin between all tunnels). Set path_routing = false to confirm, or true to keep path URLs on a single-tenant deployment."
  }
}

# ---------------------------------------------------------------- CloudFront (function_url + domain)
# The tunnels' own hostnames on the function URL edge (modules/cloudfront; issue 23): <domain> and
# *.<domain> go to CloudFront instead of API Gateway (modules/domain keeps the WebSocket name),
# and forward_stream gets the SSM parameter of the secret origin header CloudFront adds
# (httptunnel.edge_origin: without it, a direct call to the function URL is 403 edge_bypass).
# Never in the local stack: it sets no domain, and moto has no CloudFront Functions or policies.
locals {
  cloudfront                   = local.custom_domain && var.public_edge == "function_url"
  cloudfront_certificate_arn   = var.cloudfront_certificate_arn != "" ? var.cloudfront_certificate_arn : var.certificate_arn
  edge_origin_secret_parameter = "/${var.name_prefix}/edge-origin-secret"
  edge_origin_environment = {
    EDGE_ORIGIN_SECRET_SSM_PARAMETER = local.cloudfront ? local.edge_origin_secret_parameter : ""
  }
  edge_origin_statements = local.cloudfront ? [{
    sid       = "EdgeOriginSecret"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${data.aws_partition.current.partition}:ssm:${var.aws_region}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(local.edge_origin_secret_parameter, "/")}"]
  }] : []
}

module "cloudfront" {
  source = "./modules/cloudfront"
  count  = local.cloudfront ? 1 : 0

  name                  = var.name_prefix
  aliases               = concat([var.domain_name], var.wildcard_domain ? ["*.${var.domain_name}"] : [])
  certificate_arn       = local.cloudfront_certificate_arn
  origin_url            = module.function_url[0].function_url
  caller_api_endpoint   = module.caller_websocket_api.api_endpoint # WebSocket handshakes on <id>.<domain> (issue 24)
  caller_stage_name     = var.caller_websocket_stage_name
  origin_read_timeout   = 120
  secret_parameter_name = local.edge_origin_secret_parameter
  secret_version        = var.edge_origin_secret_version
  hosted_zone_id        = var.hosted_zone_id
  price_class           = var.cloudfront_price_class
  web_acl_id            = length(module.waf) == 1 ? module.waf[0].web_acl_arn : var.cloudfront_web_acl_id # waf.tf
}
