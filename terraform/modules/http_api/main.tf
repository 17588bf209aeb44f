# Public HTTP API: one $default route, Lambda proxy (payload 2.0, 30 s), auto-deployed
# $default stage with throttling (stage default and the $default route's own) and JSON
# access logs. With a custom domain, the execute-api URL can be switched off.

resource "aws_apigatewayv2_api" "this" {
  name                         = var.name
  protocol_type                = "HTTP"
  disable_execute_api_endpoint = var.disable_execute_api_endpoint
  tags                         = var.tags
}

resource "aws_apigatewayv2_integration" "this" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = var.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.integration_timeout_ms
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:the tunnel is public by design, like ngrok; the local app decides who it answers
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "$default"
  authorization_type = "NONE"
  target             = "integrations/${aws_apigatewayv2_integration.this.id}"
}

resource "aws_lambda_permission" "this" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  qualifier     = var.qualifier
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:access logs hold request lines, never bodies; the default CloudWatch encryption is enough
  #checkov:skip=CKV_AWS_338:retention is a variable (log_retention_days)
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  # The one route every public request takes: its own limits, so raising the stage default
  # (or adding routes later) never lifts the ceiling on what a caller can make forward do.
  route_settings {
    route_key              = aws_apigatewayv2_route.this.route_key
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      httpMethod     = "$context.httpMethod"
      path           = "$context.path"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationErr = "$context.integrationErrorMessage"
    })
  }

  tags = var.tags

  depends_on = [aws_apigatewayv2_route.this]
}
