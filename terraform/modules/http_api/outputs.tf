output "api_id" {
  description = "HTTP API id (root output http_api_id; the local emulator serves it)."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "https://<id>.execute-api.<region>.amazonaws.com, the public base URL without a custom domain."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "stage_name" {
  description = "Stage name ($default, so no path prefix)."
  value       = aws_apigatewayv2_stage.this.name
}

output "stage_id" {
  description = "Stage id, for API mappings of custom domains."
  value       = aws_apigatewayv2_stage.this.id
}

output "integration_uri" {
  description = "The $default route's integration URI (the forward Lambda); terraform tests assert on it."
  value       = aws_apigatewayv2_integration.this.integration_uri
}

output "throttles" {
  description = "Route key -> [rate, burst] as the stage applies them (\"*\" = stage default); terraform tests assert on it."
  value = merge(
    { "*" = [one(aws_apigatewayv2_stage.this.default_route_settings).throttling_rate_limit, one(aws_apigatewayv2_stage.this.default_route_settings).throttling_burst_limit] },
    { for r in aws_apigatewayv2_stage.this.route_settings : r.route_key => [r.throttling_rate_limit, r.throttling_burst_limit] },
  )
}

output "execute_api_disabled" {
  description = "Whether the execute-api URL is switched off (path_routing = false with a custom domain)."
  value       = aws_apigatewayv2_api.this.disable_execute_api_endpoint
}

output "permission_qualifier" {
  description = "Qualifier of the invoke permission (the alias with snap_start, else null); terraform tests assert on it."
  value       = aws_lambda_permission.this.qualifier
}
