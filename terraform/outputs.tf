output "http_url" {
  description = "Public base URL callers use (https://<http-api>.execute-api... or https://<domain_name>); tunnels live at <http_url>/<tunnel-id>/ unless path_routing = false."
  value       = local.custom_domain ? module.domain[0].http_url : module.http_api.api_endpoint
}

output "ws_url" {
  description = "What `ttf --endpoint` takes: wss://<ws-api>.execute-api.<region>.amazonaws.com/<stage> (or wss://<websocket domain>)."
  value       = local.custom_domain ? module.domain[0].ws_url : module.websocket_api.ws_url
}

output "connections_table_name" {
  description = "Connections table (local stack, tests, operators)."
  value       = module.tables.connections_table_name
}

output "pending_table_name" {
  description = "Pending requests table (local stack feeds its stream to stream_notifier)."
  value       = module.tables.pending_table_name
}

output "body_bucket_name" {
  description = "Big-body bucket (versioned, TLS only; bodies only)."
  value       = module.body_bucket.bucket_name
}

output "code_bucket_name" {
  description = "Bucket holding the Lambda layer and function zips (apart from bodies)."
  value       = module.code_bucket.bucket_name
}

output "budget_name" {
  description = "AWS Budgets alarm on the account's monthly cost (empty without budget_monthly_usd)."
  value       = var.budget_monthly_usd == null ? "" : module.budget[0].name
}

output "event_bus_name" {
  description = "EventBridge bus stream_notifier publishes to."
  value       = module.events.event_bus_name
}

output "traffic_log_group_name" {
  description = "CloudWatch log group holding one event per completed request."
  value       = module.events.traffic_log_group_name
}

output "cleanup_rule_name" {
  description = "Schedule rule of the cleanup function (the local emulator fires it itself)."
  value       = module.events.cleanup_rule_name
}

output "function_names" {
  description = "Short name (connect, disconnect, response, forward, cleanup, stream_notifier) -> Lambda function name."
  value       = { for fn, m in module.functions : fn => m.function_name }
}

output "websocket_api_id" {
  description = "WebSocket API id (the local emulator serves it)."
  value       = module.websocket_api.api_id
}

output "websocket_stage_name" {
  description = "WebSocket stage name (last path segment of ws_url without a custom domain)."
  value       = module.websocket_api.stage_name
}

output "http_api_id" {
  description = "HTTP API id (the local emulator serves it)."
  value       = module.http_api.api_id
}

output "http_stage_name" {
  description = "HTTP API stage name ($default: no path prefix)."
  value       = module.http_api.stage_name
}

output "layer_arn" {
  description = "Version ARN of the shared layer."
  value       = aws_lambda_layer_version.this.arn
}

output "custom_domain_targets" {
  description = "Custom domain -> API Gateway target name, for DNS you manage yourself (empty without domain_name)."
  value       = local.custom_domain ? module.domain[0].targets : {}
}

output "ttf_command" {
  description = "The agent command line for this deployment (run from the repository, where `make token` mints the token)."
  value       = "ttf --endpoint ${local.custom_domain ? module.domain[0].ws_url : module.websocket_api.ws_url} --port 3000${var.allow_anonymous_agents ? "" : " --token \"$(make -s token SUB=$USER)\""}"
}

output "agent_auth" {
  description = "How agents authenticate, for scripts/deploy/token.py (`make token`, `make deploy`) and the local stack: anonymous or not, where the HS256 secret lives (names, never the value), and the claims a token must carry."
  value = {
    anonymous        = var.allow_anonymous_agents
    secret_parameter = local.jwt_secret_ssm_parameter
    secret_arn       = var.jwt_secret_arn
    issuer           = local.jwt_issuer
    audience         = local.jwt_audience
    max_lifetime     = var.jwt_max_lifetime
    subdomains_claim = var.jwt_subdomains_claim
    region           = var.aws_region
  }
}

output "dashboard_url" {
  description = "CloudWatch dashboard in the console (make deploy prints it); empty when dashboard_enabled is false."
  value       = module.observability.dashboard_url
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms (and the budget alarm) notify; subscribe to it, or set alarm_email."
  value       = module.observability.alarm_topic_arn
}

output "function_url" {
  description = "The function URL callers use with public_edge = function_url (path URLs under it), else null."
  value       = try(module.function_url[0].function_url, null)
}

output "function_url_invoke_statement" {
  description = "With public_edge = function_url: the lambda:InvokeFunction statement (conditioned on lambda:InvokedViaFunctionUrl) the deploy must add with botocore; else null."
  value       = try(module.function_url[0].invoke_function_statement, null)
}

output "caller_ws_url" {
  description = "Callers' WebSocket base (query form: <it>?tunnel=<id>); shared/README.md \"Caller WebSockets\". The local stack reads it."
  value       = module.caller_websocket_api.ws_url
}

output "caller_websocket_api_id" {
  description = "Caller WebSocket API id (the local emulator serves it)."
  value       = module.caller_websocket_api.api_id
}

output "caller_websocket_stage_name" {
  description = "Caller WebSocket API stage (the local emulator serves it)."
  value       = module.caller_websocket_api.stage_name
}

output "secrets_kms_key_arn" {
  description = "The deployment's KMS key (kms.tf): seals webhook secrets on connection rows and encrypts the generated SSM SecureStrings."
  value       = aws_kms_key.secrets.arn
}

output "cloudfront" {
  description = "With public_edge = function_url and domain_name: the distribution in front of the function URL (id, its *.cloudfront.net name, alias -> target for DNS you manage yourself, the secret's SSM parameter name, never its value); else null."
  value = try({
    distribution_id       = module.cloudfront[0].distribution_id
    domain_name           = module.cloudfront[0].domain_name
    targets               = module.cloudfront[0].targets
    secret_parameter_name = module.cloudfront[0].secret_parameter_name
  }, null)
}
