output "http_url" {
  description = "https://<domain_name>, the public base URL."
  value       = "https://${var.domain_name}"
}

output "ws_url" {
  description = "wss://<websocket_domain_name>, what `ttf --endpoint` takes."
  value       = "wss://${var.websocket_domain_name}"
}

output "targets" {
  description = "Domain -> API Gateway target domain name, for DNS managed outside Route 53."
  value       = { for k, d in aws_apigatewayv2_domain_name.this : d.domain_name => d.domain_name_configuration[0].target_domain_name }
}
