output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (root output alarm_topic_arn); the budget alarm sends here too."
  value       = aws_sns_topic.this.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard name; empty when dashboard_enabled is false."
  value       = var.dashboard_enabled ? aws_cloudwatch_dashboard.this[0].dashboard_name : ""
}

output "dashboard_url" {
  description = "Console URL of the dashboard (root output dashboard_url, printed by make deploy); empty when dashboard_enabled is false."
  value       = var.dashboard_enabled ? "https://${var.aws_region}.${local.console_host}/cloudwatch/home?region=${var.aws_region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this[0].dashboard_name}" : ""
}

output "alarm_names" {
  description = "Short alarm key -> alarm name (terraform tests and operators)."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

output "metric_namespace" {
  description = "Namespace of the metrics read from the logs (TunnelErrors by ErrorCode, ActiveTunnels)."
  value       = local.namespace
}

output "tunnel_errors_pattern" {
  description = "Filter pattern of the TunnelErrors metric filter; the contract test checks it lists every code."
  value       = aws_cloudwatch_log_metric_filter.tunnel_errors.pattern
}
