# ---------------------------------------------------------------- names and packaging

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (tables <prefix>-connections / <prefix>-pending-requests, functions <prefix>-<fn>, bus <prefix>)."
  default     = "http-tunnel"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,26}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-28 lowercase letters, digits or '-', starting with a letter (\"<name_prefix>-bodies-\" must fit S3's 36-character bucket_prefix)."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region to deploy to."
  default     = "us-east-1"
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource (provider default_tags)."
  default     = { project = "http-tunnel" }
}

variable "build_dir" {
  type        = string
  description = "Folder holding layer.zip and functions/<fn>.zip from scripts/package; empty = <root>/../build."
  default     = ""
}

variable "lambda_architecture" {
  type        = string
  description = "Lambda instruction set; the layer in build_dir must be built for it (make build: arm64)."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_runtime" {
  type        = string
  description = "Lambda Python runtime; the layer in build_dir must be built for it."
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13."
  }
}

variable "function_settings" {
  type = map(object({
    memory_size          = optional(number)
    timeout              = optional(number)
    reserved_concurrency = optional(number)
  }))
  description = "Per-function overrides keyed by short name (connect, disconnect, response, forward, cleanup, stream_notifier): memory_size MB, timeout s, reserved_concurrency."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.function_settings) : contains(["connect", "disconnect", "response", "forward", "cleanup", "stream_notifier"], k)])
    error_message = "function_settings keys must be function short names: connect, disconnect, response, forward, cleanup, stream_notifier."
  }

  validation {
    condition     = coalesce(try(var.function_settings["forward"].timeout, null), 29) > 25 && coalesce(try(var.function_settings["forward"].timeout, null), 29) <= 30
    error_message = "forward timeout must be 26-30 s: it waits up to 25 s for the agent and API Gateway gives up at 30 s."
  }
}

variable "lambda_tracing_mode" {
  type        = string
  description = "X-Ray tracing of the functions: PassThrough or Active (Active also needs xray permissions you add yourself)."
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.lambda_tracing_mode)
    error_message = "lambda_tracing_mode must be PassThrough or Active."
  }
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of every function."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "path_referer_routing" {
  type        = bool
  description = "Single-tenant deployments only. When true, a path-URL request whose first segment is no live tunnel (a page's root-relative fetch('/api/x')) is sent to the tunnel named by its same-origin Referer (https://<host>/<id>/...). Every path URL shares one origin, so any page served through any tunnel can then make requests that reach another tunnel's local service, and that tunnel's answers (and cookies, which path URLs already share) are readable by the first; leave false whenever tunnels belong to different people. Off by default."
  default     = false
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group (functions, HTTP access log, traffic log)."
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# ---------------------------------------------------------------- data

variable "point_in_time_recovery" {
  type        = bool
  description = "Enable point-in-time recovery on both tables."
  default     = false
}

variable "snap_start" {
  description = "Lambda SnapStart for every function (python3.12+ only, which lambda_runtime already requires): each change publishes a version, an alias \"live\" follows it, and the API integrations, their permissions, the stream mapping and the cleanup schedule invoke the alias. Costs a snapshot cache charge per published version (per GB-s while cached, 3 h minimum) plus a restore charge per GB on each cold start; see https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-pricing. Off by default."
  type        = bool
  default     = false
}

variable "traffic_log" {
  description = "Publish one EventBridge event per answered request (the traffic log: stream_notifier reads the answer rows' stream). Costs about $1 per million requests in PutEvents plus the notifier's invocations; false (the default) creates no stream mapping, so no stream record leads to an invocation."
  type        = bool
  default     = false
}

variable "cleanup_schedule" {
  type        = string
  description = "EventBridge schedule of the cleanup Lambda: rate(N minutes|hours|days) (singular for 1, one minute at the finest) or cron(...)."
  default     = "rate(5 minutes)"

  validation {
    # EventBridge's rate grammar: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\(.+\\))$", var.cleanup_schedule))
    error_message = "cleanup_schedule must be rate(N unit) with a whole N >= 1 and a unit of minutes, hours or days (singular for 1: rate(1 minute)), or cron(...): EventBridge refuses anything else and runs nothing more often than once a minute."
  }
}

# ---------------------------------------------------------------- APIs and routing

variable "websocket_stage_name" {
  type        = string
  description = "WebSocket API stage; ws_url is wss://<id>.execute-api.<region>.amazonaws.com/<stage>."
  default     = "prod"
}

# Throttles bound what anyone on the internet can make the stack spend (README, "The public edge").
# forward holds a request up to 25 s, so the HTTP limits bound forward's concurrency at about
# burst + rate x 25 s even when a tunnel never answers: 100 + 20 x 25 = 600 by default.
variable "http_throttling_burst_limit" {
  type        = number
  description = "HTTP API burst limit (requests), on the stage and on the $default route every public request takes."
  default     = 100

  validation {
    condition     = var.http_throttling_burst_limit >= 1 && var.http_throttling_burst_limit <= 5000
    error_message = "http_throttling_burst_limit must be 1-5000 (the account-wide API Gateway burst)."
  }
}

variable "http_throttling_rate_limit" {
  type        = number
  description = "HTTP API steady rate (requests per second), on the stage and on the $default route. Each held request keeps a forward Lambda for up to 25 s: concurrency can reach about burst + 25 x rate."
  default     = 20

  validation {
    condition     = var.http_throttling_rate_limit > 0 && var.http_throttling_rate_limit <= 10000
    error_message = "http_throttling_rate_limit must be above 0 and at most 10000 (the account-wide API Gateway rate)."
  }
}

variable "websocket_throttling_burst_limit" {
  type        = number
  description = "WebSocket API burst limit (messages) of the stage default: agents' answers and pings."
  default     = 200

  validation {
    condition     = var.websocket_throttling_burst_limit >= 1 && var.websocket_throttling_burst_limit <= 5000
    error_message = "websocket_throttling_burst_limit must be 1-5000."
  }

  validation {
    condition     = var.websocket_throttling_burst_limit >= var.http_throttling_burst_limit
    error_message = "websocket_throttling_burst_limit (${var.websocket_throttling_burst_limit}) must be at least http_throttling_burst_limit (${var.http_throttling_burst_limit}): a burst of requests is a burst of answers (shared/README.md, the $default budget)."
  }
}

variable "websocket_throttling_rate_limit" {
  type        = number
  description = "WebSocket API steady rate (messages per second) of the stage default; keep it at least the HTTP rate (one answer per request)."
  default     = 100

  validation {
    condition     = var.websocket_throttling_rate_limit > 0 && var.websocket_throttling_rate_limit <= 10000
    error_message = "websocket_throttling_rate_limit must be above 0 and at most 10000."
  }

  # The budget table in shared/README.md ("One budget: the agents' $default route"): one answer
  # per public request plus a quarter for resends of throttled answers.
  validation {
    condition     = var.websocket_throttling_rate_limit >= 1.25 * var.http_throttling_rate_limit
    error_message = "websocket_throttling_rate_limit (${var.websocket_throttling_rate_limit}) must be at least 1.25 x http_throttling_rate_limit (${1.25 * var.http_throttling_rate_limit}): every public request needs one agent message back, plus room for resending throttled answers (shared/README.md, the $default budget)."
  }
}

variable "websocket_connect_throttling_burst_limit" {
  type        = number
  description = "$connect route burst limit (connection attempts): anyone who finds ws_url can knock; agents retry with backoff."
  default     = 20

  validation {
    condition     = var.websocket_connect_throttling_burst_limit >= 1 && var.websocket_connect_throttling_burst_limit <= 5000
    error_message = "websocket_connect_throttling_burst_limit must be 1-5000."
  }
}

variable "websocket_connect_throttling_rate_limit" {
  type        = number
  description = "$connect route steady rate (connection attempts per second)."
  default     = 5

  validation {
    condition     = var.websocket_connect_throttling_rate_limit > 0 && var.websocket_connect_throttling_rate_limit <= 10000
    error_message = "websocket_connect_throttling_rate_limit must be above 0 and at most 10000."
  }
}

variable "forward_reserved_concurrency" {
  type        = number
  description = "Optional ceiling on concurrent forward Lambdas (reserved concurrency); null = off. Callers past it get API Gateway's 500 at once and the rest of the account keeps its Lambda concurrency. AWS keeps at least 100 executions of the account's concurrency quota unreserved, so the quota must be at least 100 + this value; new accounts often have a quota of 10 (Service Quotas > Lambda > Concurrent executions)."
  default     = null

  validation {
    condition     = var.forward_reserved_concurrency == null || try(var.forward_reserved_concurrency >= 1 && floor(var.forward_reserved_concurrency) == var.forward_reserved_concurrency, false)
    error_message = "forward_reserved_concurrency must be a whole number of at least 1 (or null for no ceiling). AWS refuses a reservation that leaves fewer than 100 unreserved executions in the account and region: with the default quota of 1,000 at most 900 can be reserved, and a new account whose quota is still 10 cannot reserve any (ask for a higher quota in Service Quotas first)."
  }

  validation {
    condition     = var.forward_reserved_concurrency == null || try(var.function_settings["forward"].reserved_concurrency, null) == null
    error_message = "Set the forward ceiling once: forward_reserved_concurrency, or function_settings.forward.reserved_concurrency, not both."
  }
}

variable "budget_monthly_usd" {
  type        = number
  description = "Optional AWS Budgets alarm: monthly cost of the whole account in USD; notifications at 80 % and 100 % of actual spend and 100 % of the forecast go to the alarm topic (output alarm_topic_arn, or alarm_topic_arn). null = no budget."
  default     = null

  validation {
    condition     = var.budget_monthly_usd == null || try(var.budget_monthly_usd > 0, false)
    error_message = "budget_monthly_usd must be more than 0 (or null for no budget)."
  }
}

variable "alarm_topic_arn" {
  type        = string
  description = "SNS topic ARN the budget alarm sends to instead of the stack's own alarm topic (empty = the stack's, output alarm_topic_arn). Its access policy must allow budgets.amazonaws.com to publish."
  default     = ""

  validation {
    condition     = var.alarm_topic_arn == "" || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)."
  }
}

variable "tunnel_domain" {
  type        = string
  description = "Host suffix for subdomain routing (<id>.<tunnel_domain>); empty = domain_name when wildcard_domain, else path mode only."
  default     = ""
}

variable "path_routing" {
  type        = bool
  description = "Serve tunnels at <http_url>/<tunnel-id>/ too. Path mode puts EVERY tunnel on ONE origin: any tunnel's page can read another tunnel's answers in the browser. Keep it only for a single-tenant deployment; false (subdomains only) needs domain_name with wildcard_domain, and switches the execute-api URL off. Unset (null): false when domain_name and wildcard_domain give subdomain routing, true otherwise."
  default     = null

  validation {
    condition     = var.path_routing != false || (var.domain_name != "" && var.wildcard_domain)
    error_message = "path_routing = false needs subdomain routing: set domain_name (with certificate_arn) and keep wildcard_domain = true."
  }
}

variable "subdomain_url_template" {
  type        = string
  description = "Subdomain URL sent to agents, e.g. https://{tunnel_id}.t.example.com; empty = derived from domain_name when wildcard_domain."
  default     = ""

  validation {
    condition     = var.subdomain_url_template == "" || strcontains(var.subdomain_url_template, "{tunnel_id}")
    error_message = "subdomain_url_template must contain {tunnel_id}."
  }
}

# ---------------------------------------------------------------- custom domains

variable "domain_name" {
  type        = string
  description = "Custom HTTP domain (e.g. t.example.com); empty = use the execute-api URLs."
  default     = ""
}

variable "websocket_domain_name" {
  type        = string
  description = "Custom WebSocket domain; empty = ws.<domain_name>."
  default     = ""
}

variable "caller_websocket_domain_name" {
  type        = string
  description = "Custom domain of the caller WebSocket API (callers' sockets, query form wss://<it>/?tunnel=<id>); empty = sockets.<domain_name> (covered by the *.<domain_name> certificate)."
  default     = ""
}

variable "caller_websocket_stage_name" {
  type        = string
  description = "Stage of the caller WebSocket API (wss://<id>.execute-api.<region>.amazonaws.com/<stage>)."
  default     = "live"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.caller_websocket_stage_name))
    error_message = "caller_websocket_stage_name must be 1-128 letters, digits, '-' or '_'."
  }
}

variable "caller_connect_throttling_rate_limit" {
  type        = number
  description = "Caller WebSocket $connect steady rate (new caller sockets per second). AWS allows 500 new WebSocket connections per second per account and region, shared with the agents' API: the two $connect rates together must stay under it."
  default     = 100

  validation {
    condition     = var.caller_connect_throttling_rate_limit > 0 && var.caller_connect_throttling_rate_limit + var.websocket_connect_throttling_rate_limit <= 500
    error_message = "caller_connect_throttling_rate_limit + websocket_connect_throttling_rate_limit must be above 0 and at most 500 (AWS's new WebSocket connections per second per account and region, both APIs together)."
  }
}

variable "caller_connect_throttling_burst_limit" {
  type        = number
  description = "Caller WebSocket $connect burst (connection attempts)."
  default     = 200

  validation {
    condition     = var.caller_connect_throttling_burst_limit >= 1 && var.caller_connect_throttling_burst_limit <= 5000
    error_message = "caller_connect_throttling_burst_limit must be 1-5000."
  }
}

variable "caller_message_throttling_rate_limit" {
  type        = number
  description = "Caller WebSocket stage default rate (caller messages per second, every caller of every tunnel)."
  default     = 200

  validation {
    condition     = var.caller_message_throttling_rate_limit > 0 && var.caller_message_throttling_rate_limit <= 10000
    error_message = "caller_message_throttling_rate_limit must be above 0 and at most 10000."
  }
}

variable "caller_message_throttling_burst_limit" {
  type        = number
  description = "Caller WebSocket stage default burst (caller messages)."
  default     = 400

  validation {
    condition     = var.caller_message_throttling_burst_limit >= 1 && var.caller_message_throttling_burst_limit <= 5000
    error_message = "caller_message_throttling_burst_limit must be 1-5000."
  }
}

variable "wildcard_domain" {
  type        = bool
  description = "Map *.<domain_name> to the HTTP API for subdomain routing."
  default     = true
}

variable "certificate_arn" {
  type        = string
  description = "Regional ACM certificate covering domain_name, *.domain_name and the WebSocket domain (required with domain_name)."
  default     = ""

  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 hosted zone for alias records of the custom domains; empty = manage DNS yourself."
  default     = ""
}

# ---------------------------------------------------------------- agent authentication
# On by default: without key material of your own, Terraform generates the HS256 secret into an
# SSM SecureString (never into state) and `make token` mints tokens with it.

variable "allow_anonymous_agents" {
  type        = bool
  description = "Let agents connect without a token: anyone who finds ws_url gets public URLs on your domain and certificate. Off by default; make deploy warns when it is on."
  default     = false
}

variable "require_auth" {
  type        = bool
  description = "Removed (auth is always on unless allow_anonymous_agents = true). Declared only so that a configuration still setting it fails with directions instead of silently changing meaning."
  default     = null
  nullable    = true

  validation {
    condition     = var.require_auth == null
    error_message = "require_auth was removed: agents now authenticate by default (Terraform generates the HS256 secret; `make token SUB=name` mints tokens). Delete require_auth; to let anyone connect, set allow_anonymous_agents = true."
  }
}

variable "jwt_secret" {
  type        = string
  description = "HS256 secret as a value (lands in the function's environment; prefer jwt_secret_ssm_parameter or jwt_secret_arn, or leave all three empty and let Terraform generate one)."
  default     = ""
  sensitive   = true

  validation {
    condition     = var.jwt_secret == "" || length(var.jwt_secret) >= 32
    error_message = "jwt_secret must be at least 32 characters (RFC 7518 3.2: an HS256 key as long as the hash)."
  }
}

variable "jwt_secret_ssm_parameter" {
  type        = string
  description = "Name of your own SSM SecureString parameter holding the HS256 secret (aws/ssm key, at least 32 bytes); empty = the generated /<name_prefix>/agent-jwt-secret."
  default     = ""
}

variable "jwt_secret_arn" {
  type        = string
  description = "ARN of your own Secrets Manager secret holding the HS256 secret (at least 32 bytes)."
  default     = ""

  validation {
    condition     = var.jwt_secret_arn == "" || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.jwt_secret_arn))
    error_message = "jwt_secret_arn must be a Secrets Manager ARN."
  }
}

variable "jwt_secret_version" {
  type        = number
  description = "Version of the generated HS256 secret (value_wo_version of its SSM parameter). Increase it to rotate the secret: every token minted before stops working."
  default     = 1

  validation {
    condition     = var.jwt_secret_version >= 1 && floor(var.jwt_secret_version) == var.jwt_secret_version
    error_message = "jwt_secret_version must be a whole number >= 1."
  }
}

variable "request_id_key_version" {
  type        = number
  description = "Version of the request-id HMAC key forward mints with (channel v2; shared/README.md). Increase it by one to rotate: ids of the previous version keep verifying, the one before is dropped."
  default     = 1

  validation {
    condition     = var.request_id_key_version >= 1 && var.request_id_key_version <= 999999 && floor(var.request_id_key_version) == var.request_id_key_version
    error_message = "request_id_key_version must be a whole number 1-999999."
  }
}

variable "request_id_key_ssm_prefix" {
  type        = string
  description = "Bring your own request-id keys: the SSM SecureStrings <prefix>0 and <prefix>1 (version N's key, >= 32 bytes, in slot N mod 2). Empty = Terraform generates both into /<name_prefix>/request-id-key-0 and -1."
  default     = ""

  validation {
    condition     = var.request_id_key_ssm_prefix == "" || can(regex("^/[A-Za-z0-9_./-]+$", var.request_id_key_ssm_prefix))
    error_message = "request_id_key_ssm_prefix must be an SSM parameter path prefix such as /tunnel/request-id-key- (or empty)."
  }
}

variable "jwks" {
  type        = string
  description = "Inline JWKS JSON with the public keys for RS256/384/512 and ES256/384 tokens (needs jwt_audience)."
  default     = ""

  validation {
    condition     = var.jwks == "" || can(jsondecode(var.jwks).keys)
    error_message = "jwks must be a JSON object with a keys array."
  }
}

variable "jwks_url" {
  type        = string
  description = "https URL of a JWKS document, fetched and cached by the connect Lambda (needs jwt_audience)."
  default     = ""

  validation {
    condition     = var.jwks_url == "" || startswith(var.jwks_url, "https://")
    error_message = "jwks_url must be an https:// URL."
  }
}

variable "jwt_issuer" {
  type        = string
  description = "Expected iss claim; empty = <name_prefix> when Terraform generates the secret, else not checked."
  default     = ""
}

variable "jwt_audience" {
  type        = string
  description = "Expected aud claim; required with jwks/jwks_url (an identity provider's token for another app must not pass); empty = <name_prefix>-agents when Terraform generates the secret, else not checked."
  default     = ""

  validation {
    condition     = (var.jwks == "" && var.jwks_url == "") || var.jwt_audience != ""
    error_message = "jwks / jwks_url need jwt_audience: without it a token your identity provider minted for any other app would be accepted."
  }
}

variable "jwt_max_lifetime" {
  type        = number
  description = "Longest accepted token lifetime in seconds (exp - iat); tokens without iat are then refused. 0 = no limit."
  default     = 0

  validation {
    condition     = var.jwt_max_lifetime >= 0 && floor(var.jwt_max_lifetime) == var.jwt_max_lifetime
    error_message = "jwt_max_lifetime must be a whole number of seconds >= 0 (0 = no limit)."
  }
}

variable "jwt_subdomains_claim" {
  type        = string
  description = "Claim listing the tunnel names a token may reserve."
  default     = "tunnel_subdomains"
}

# ---------------------------------------------------------------- observability (modules/observability)

variable "alarms_enabled" {
  type        = bool
  description = "Create the CloudWatch alarms (tunnel error codes, HTTP 4xx/5xx rates, Lambda errors/throttles/concurrency, DynamoDB throttles); they notify the alarm topic."
  default     = true
}

variable "dashboard_enabled" {
  type        = bool
  description = "Create the CloudWatch dashboard (root output dashboard_url)."
  default     = true
}

variable "alarm_email" {
  type        = string
  description = "E-mail address subscribed to the alarm topic (confirm the mail AWS sends); empty = subscribe yourself. Checked by modules/observability."
  default     = ""
}

variable "alarm_thresholds" {
  # Passed through to modules/observability (variable thresholds), which owns the defaults and the
  # checks: a bad value stops the plan there, with its message. The attributes are repeated here
  # (Terraform has no shared type definitions) without defaults: null means the module's default.
  type = object({
    period_seconds       = optional(number)
    evaluation_periods   = optional(number)
    min_requests         = optional(number)
    tunnel_error_percent = optional(map(number))
    http_5xx_percent     = optional(number)
    http_4xx_percent     = optional(number)
    lambda_errors        = optional(number)
    lambda_throttles     = optional(number)
    concurrency_percent  = optional(number)
    dynamodb_throttles   = optional(number)
  })
  description = "Alarm thresholds (terraform/modules/observability/README.md has the defaults): rates in percent of requests per period, counts per period; tunnel_error_percent per x-tunnel-error code (0 = no alarm). Checked by the module: period_seconds a multiple of 60, evaluation_periods >= 1, concurrency_percent in (0, 100], tunnel_error_percent keys x-tunnel-error codes."
  default     = {}
}

variable "lambda_concurrency_limit" {
  type        = number
  description = "Your account's Lambda concurrent-executions quota in this region (Service Quotas L-B99A9384): 1,000 by default, often 10 on new accounts. The concurrency alarm fires at alarm_thresholds.concurrency_percent of it. At least 1 (checked by modules/observability)."
  default     = 1000
}

variable "public_edge" {
  type        = string
  description = "What callers reach tunnels through: http_api (API Gateway HTTP API, buffered answers, 25 s; the default) or function_url (a Lambda function URL, invoke_mode RESPONSE_STREAM: streamed answers, 15 min, 200 MB). function_url fronts forward_stream, which relays the answers of agents that announce stream as they are produced (SSE, chunked bodies, downloads up to 200 MB without a redirect, slow answers up to max_stream_seconds) and older agents' whole answers through the stream; CloudFront fronts it when domain_name is set. Design and numbers: shared/README.md, \"The live web: the streaming edge (design)\"."
  default     = "http_api"

  validation {
    condition     = contains(["http_api", "function_url"], var.public_edge)
    error_message = "public_edge must be http_api or function_url."
  }

  validation {
    condition     = var.public_edge != "function_url" || var.forward_reserved_concurrency != null
    error_message = "public_edge = function_url needs forward_reserved_concurrency: nothing throttles callers in front of a function URL, so the reservation is the only ceiling on what one caller can make forward cost (shared/README.md: one anonymous caller's worst case)."
  }
}

variable "max_stream_seconds" {
  type        = number
  description = "The longest a request may last on the function URL edge (forward_stream; shared/README.md \"The live web\"): AWS gives no disconnect signal, so this ends every request, and forward_stream's timeout is this + 15 s."
  default     = 600

  validation {
    condition     = var.max_stream_seconds >= 30 && var.max_stream_seconds <= 885
    error_message = "max_stream_seconds must be 30..885 (Lambda's 900 s, less the 15 s forward_stream keeps to answer)."
  }
}

# ---------------------------------------------------------------- CloudFront (function_url + domain_name)

variable "cloudfront_certificate_arn" {
  type        = string
  description = "With public_edge = function_url and domain_name: an ACM certificate in us-east-1 covering domain_name and *.domain_name, for the CloudFront distribution in front of the function URL (CloudFront takes us-east-1 certificates only). Empty = certificate_arn, which then must be in us-east-1 (deployments in us-east-1 need only the one certificate)."
  default     = ""

  validation {
    condition     = var.cloudfront_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:us-east-1:", var.cloudfront_certificate_arn))
    error_message = "cloudfront_certificate_arn must be an ACM certificate ARN in us-east-1 (CloudFront uses no other region's certificates)."
  }

  validation {
    condition     = var.public_edge != "function_url" || var.domain_name == "" || can(regex("^arn:aws[a-z-]*:acm:us-east-1:", var.cloudfront_certificate_arn != "" ? var.cloudfront_certificate_arn : var.certificate_arn))
    error_message = "public_edge = function_url with domain_name puts CloudFront in front of the function URL, which needs a certificate in us-east-1 covering domain_name and *.domain_name: set cloudfront_certificate_arn (aws acm request-certificate --region us-east-1 --domain-name <domain> --subject-alternative-names '*.<domain>' --validation-method DNS), or deploy to us-east-1 where certificate_arn serves both."
  }
}

variable "cloudfront_price_class" {
  type        = string
  description = "Price class of the CloudFront distribution (function_url edge with a domain): PriceClass_All (every edge location), PriceClass_200 or PriceClass_100 (fewer locations, lower request and transfer prices). Checked by modules/cloudfront."
  default     = "PriceClass_All"
}

variable "cloudfront_web_acl_id" {
  type        = string
  description = "Optional WAFv2 web ACL (scope CLOUDFRONT, us-east-1) attached to the distribution in front of the function URL; empty = none."
  default     = ""
}

variable "edge_origin_secret_version" {
  type        = number
  description = "Version of the generated secret CloudFront adds to requests to the function URL (x-tunnel-origin-verify). Increase it to rotate: CloudFront and the SSM parameter change in one apply; direct calls without it are 403 edge_bypass. Checked by modules/cloudfront (a whole number >= 1)."
  default     = 1
}
