# EventBridge: the tunnel's own bus (stream_notifier publishes completed requests on it),
# a rule keeping those events as a traffic log in CloudWatch Logs, and the cleanup schedule.

resource "aws_cloudwatch_event_bus" "this" {
  name = var.name
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "traffic" {
  #checkov:skip=CKV_AWS_158:traffic events carry method, path, status and sizes, never bodies; the default CloudWatch encryption is enough
  #checkov:skip=CKV_AWS_338:retention is a variable (traffic_log_retention_days)
  name              = "/aws/events/${var.name}/traffic"
  retention_in_days = var.traffic_log_retention_days
  tags              = var.tags
}

# EventBridge writes to CloudWatch Logs only when a resource policy lets it.
resource "aws_cloudwatch_log_resource_policy" "traffic" {
  policy_name = "${var.name}-events-to-traffic-log"
  policy_document = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeToTrafficLog"
      Effect    = "Allow"
      Principal = { Service = ["events.amazonaws.com", "delivery.logs.amazonaws.com"] }
      Action    = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource  = "${aws_cloudwatch_log_group.traffic.arn}:*"
    }]
  })
}

resource "aws_cloudwatch_event_rule" "traffic" {
  name           = "${var.name}-traffic"
  description    = "Completed tunnel requests -> traffic log"
  event_bus_name = aws_cloudwatch_event_bus.this.name
  event_pattern  = jsonencode({ source = [var.event_source] })
  tags           = var.tags
}

resource "aws_cloudwatch_event_target" "traffic" {
  rule           = aws_cloudwatch_event_rule.traffic.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "traffic-log"
  arn            = aws_cloudwatch_log_group.traffic.arn

  depends_on = [aws_cloudwatch_log_resource_policy.traffic]
}

# Schedules only run on the default bus.
resource "aws_cloudwatch_event_rule" "cleanup" {
  name                = "${var.name}-cleanup"
  description         = "Removes expired connection and pending rows"
  schedule_expression = var.cleanup_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "cleanup" {
  rule      = aws_cloudwatch_event_rule.cleanup.name
  target_id = "cleanup"
  arn       = var.cleanup_function_arn
}

resource "aws_lambda_permission" "cleanup" {
  statement_id  = "AllowCleanupSchedule"
  action        = "lambda:InvokeFunction"
  function_name = var.cleanup_function_name
  qualifier     = var.cleanup_qualifier
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.cleanup.arn
}
