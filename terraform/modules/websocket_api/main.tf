# WebSocket API for the agents: $connect, $disconnect and $default, each a Lambda proxy
# integration. Every agent message (ready, ping, http_response, error) arrives on $default.
# A route in service_integrations is an AWS service integration instead (the caller API's $default:
# SendMessage to an SQS FIFO queue, terraform/caller_queue.tf), with no Lambda permission.

resource "aws_apigatewayv2_api" "this" {
  name                       = var.name
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"
  tags                       = var.tags
}

resource "aws_apigatewayv2_integration" "this" {
  for_each = var.routes

  api_id             = aws_apigatewayv2_api.this.id
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = each.value.invoke_arn
}

resource "aws_apigatewayv2_integration" "service" {
  for_each = var.service_integrations

  api_id                        = aws_apigatewayv2_api.this.id
  integration_type              = "AWS"
  integration_method            = "POST"
  integration_uri               = each.value.integration_uri
  credentials_arn               = each.value.credentials_arn
  passthrough_behavior          = "NEVER"
  request_parameters            = each.value.request_parameters
  request_templates             = each.value.request_templates
  template_selection_expression = each.value.template_selection_expression
}

resource "aws_apigatewayv2_route" "this" {
  for_each = toset(concat(keys(var.routes), keys(var.service_integrations)))

  #checkov:skip=CKV_AWS_309:agents authenticate in the connect Lambda (JWT/JWKS when require_auth); API Gateway authorizers do not apply to $disconnect/$default
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  authorization_type = "NONE"
  target             = "integrations/${contains(keys(var.routes), each.key) ? aws_apigatewayv2_integration.this[each.key].id : aws_apigatewayv2_integration.service[each.key].id}"
}

resource "aws_lambda_permission" "this" {
  for_each = var.routes

  statement_id  = "AllowWebSocket${replace(each.key, "$", "")}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.function_name
  qualifier     = each.value.qualifier
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/${each.key}"
}

# auto_deploy keeps the stage in step with routes (no separate deployment resource to
# re-trigger by hand).
resource "aws_apigatewayv2_stage" "this" {
  #checkov:skip=CKV2_AWS_51:agents authenticate with a JWT on $connect; API Gateway mTLS needs a custom domain and a CA the user runs
  #checkov:skip=CKV_AWS_76:WebSocket access logs need the account-wide API Gateway CloudWatch role (a per-account singleton this stack does not own); the functions log every event
  api_id      = aws_apigatewayv2_api.this.id
  name        = var.stage_name
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  # Per-route limits (e.g. $connect: anyone on the internet can knock on it).
  dynamic "route_settings" {
    for_each = var.route_throttles
    content {
      route_key              = aws_apigatewayv2_route.this[route_settings.key].route_key
      throttling_burst_limit = route_settings.value.burst_limit
      throttling_rate_limit  = route_settings.value.rate_limit
    }
  }

  tags = var.tags

  depends_on = [aws_apigatewayv2_route.this]
}
