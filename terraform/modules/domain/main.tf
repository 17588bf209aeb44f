# Optional custom domains (one ACM certificate covering <domain> and *.<domain>):
#   <domain>           -> HTTP API (path mode:      https://<domain>/<tunnel-id>/...)
#   *.<domain>         -> HTTP API (subdomain mode: https://<tunnel-id>.<domain>/...)
#   <websocket_domain> -> WebSocket API stage (ttf --endpoint wss://<websocket_domain>)
#   <caller_websocket_domain> -> the caller WebSocket API's stage (callers' sockets: wss://<it>/?tunnel=<id>)
# API Gateway prefers an exact name over the wildcard, so the WebSocket name may sit under <domain>.
# With http_names = false (CloudFront serves <domain> and *.<domain>: modules/cloudfront) only the
# WebSocket name is made; DNS prefers its exact record over the wildcard's too.

locals {
  domains = merge(
    { ws = { name = var.websocket_domain_name, api_id = var.websocket_api_id, stage = var.websocket_stage_id } },
    var.http_names ? { http = { name = var.domain_name, api_id = var.http_api_id, stage = var.http_stage_id } } : {},
    var.caller_websocket_domain_name != "" ? { callers = { name = var.caller_websocket_domain_name, api_id = var.caller_websocket_api_id, stage = var.caller_websocket_stage_id } } : {},
    var.http_names && var.wildcard ? { wildcard = { name = "*.${var.domain_name}", api_id = var.http_api_id, stage = var.http_stage_id } } : {},
  )
}

resource "aws_apigatewayv2_domain_name" "this" {
  for_each = local.domains

  domain_name = each.value.name

  domain_name_configuration {
    certificate_arn = var.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }

  tags = var.tags
}

# Each mapping's stage is a value read from the stage resource (not the variable the stage was
# named from): Terraform then creates the stage first. AWS refuses a mapping to a stage that does
# not exist yet ("Invalid stage identifier specified"); moto does not, so tests/infra checks the
# ordering in `terraform graph`.
resource "aws_apigatewayv2_api_mapping" "this" {
  for_each = local.domains

  api_id      = each.value.api_id
  domain_name = aws_apigatewayv2_domain_name.this[each.key].id
  stage       = each.value.stage
}

resource "aws_route53_record" "this" {
  for_each = var.hosted_zone_id == "" ? {} : local.domains

  zone_id = var.hosted_zone_id
  name    = each.value.name
  type    = "A"

  alias {
    name                   = aws_apigatewayv2_domain_name.this[each.key].domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.this[each.key].domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = false
  }
}
