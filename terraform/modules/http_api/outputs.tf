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

output "permission_qualifier" {
  description = "Qualifier of the invoke permission (the alias with snap_start, else null); terraform tests assert on it."
  value       = aws_lambda_permission.this.qualifier
}
