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

output "alarms" {
  description = "Short alarm key -> what the alarm is (name, threshold, actions, the returned expression, the metrics it reads); operators and terraform tests."
  value = {
    for k, a in aws_cloudwatch_metric_alarm.this : k => {
      name               = a.alarm_name
      threshold          = a.threshold
      alarm_actions      = a.alarm_actions
      ok_actions         = a.ok_actions
      treat_missing_data = a.treat_missing_data
      expression         = one([for q in a.metric_query : q.expression if q.return_data && q.expression != ""])
      metrics = [
        for q in a.metric_query : {
          id         = q.id
          namespace  = q.metric[0].namespace
          name       = q.metric[0].metric_name
          dimensions = q.metric[0].dimensions
          stat       = q.metric[0].stat
        } if length(q.metric) > 0
      ]
    }
  }
}

output "alarm_email_endpoints" {
  description = "E-mail addresses subscribed to the alarm topic by this module (terraform tests)."
  value       = [for s in aws_sns_topic_subscription.email : s.endpoint if s.protocol == "email"]
}

output "metric_namespace" {
  description = "Namespace of the metrics read from the logs (TunnelErrors by ErrorCode, ActiveTunnels)."
  value       = local.namespace
}

output "metric_filters" {
  description = "Metric name -> its log filter (log group, pattern, value, dimensions); the contract test and terraform tests check them."
  value = {
    for f in [aws_cloudwatch_log_metric_filter.tunnel_errors, aws_cloudwatch_log_metric_filter.active_tunnels] :
    f.metric_transformation[0].name => {
      log_group_name = f.log_group_name
      pattern        = f.pattern
      value          = f.metric_transformation[0].value
      dimensions     = f.metric_transformation[0].dimensions
    }
  }
}

output "dashboard_body" {
  description = "The dashboard's JSON (terraform tests); empty when dashboard_enabled is false."
  value       = var.dashboard_enabled ? aws_cloudwatch_dashboard.this[0].dashboard_body : ""
}
