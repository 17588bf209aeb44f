locals {
  # AWS answers wss://<id>.execute-api.<region>.amazonaws.com; some emulators answer https://.
  host = trimprefix(trimprefix(aws_apigatewayv2_api.this.api_endpoint, "wss://"), "https://")
}

output "api_id" {
  description = "WebSocket API id (root output websocket_api_id; the local emulator serves it)."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "wss://<id>.execute-api.<region>.amazonaws.com (no stage)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "execution_arn" {
  description = "Execution ARN; IAM policies for execute-api:ManageConnections build on it."
  value       = aws_apigatewayv2_api.this.execution_arn
}

output "stage_name" {
  description = "Stage name (known before the stage exists, so functions can be configured without a cycle)."
  value       = var.stage_name
}

output "stage_id" {
  description = "The stage resource's id (its name), for API mappings: referencing it orders a mapping after the stage."
  value       = aws_apigatewayv2_stage.this.id
}

output "ws_url" {
  description = "What `ttf --endpoint` takes: wss://<id>.execute-api.<region>.amazonaws.com/<stage>."
  value       = "wss://${local.host}/${var.stage_name}"
}

output "management_endpoint" {
  description = "@connections management API base (https://<id>.execute-api.<region>.amazonaws.com/<stage>), WS_MANAGEMENT_ENDPOINT of the functions."
  value       = "https://${local.host}/${var.stage_name}"
}

output "route_targets" {
  description = "Route key -> integration URI (the Lambda invoke ARN); terraform tests assert on it."
  value       = { for k, r in aws_apigatewayv2_route.this : k => contains(keys(var.routes), k) ? aws_apigatewayv2_integration.this[k].integration_uri : aws_apigatewayv2_integration.service[k].integration_uri }
}

output "throttles" {
  description = "Route key -> [rate, burst] as the stage applies them (\"*\" = stage default); terraform tests assert on it."
  value = merge(
    { "*" = [one(aws_apigatewayv2_stage.this.default_route_settings).throttling_rate_limit, one(aws_apigatewayv2_stage.this.default_route_settings).throttling_burst_limit] },
    { for r in aws_apigatewayv2_stage.this.route_settings : r.route_key => [r.throttling_rate_limit, r.throttling_burst_limit] },
  )
}

output "permission_qualifiers" {
  description = "Route key -> qualifier of its invoke permission (the alias with snap_start, else null); terraform tests assert on it."
  value       = { for k, p in aws_lambda_permission.this : k => p.qualifier }
}

output "service_integrations" {
  description = "Route key -> its AWS service integration (type, uri, credentials, templates); terraform tests assert on it."
  value = { for k, i in aws_apigatewayv2_integration.service : k => {
    integration_type              = i.integration_type
    integration_uri               = i.integration_uri
    credentials_arn               = i.credentials_arn
    passthrough_behavior          = i.passthrough_behavior
    request_parameters            = i.request_parameters
    request_templates             = i.request_templates
    template_selection_expression = i.template_selection_expression
  } }
}
