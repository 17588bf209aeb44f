output "event_bus_name" {
  description = "Bus name, EVENT_BUS_NAME of stream_notifier (root output event_bus_name)."
  value       = aws_cloudwatch_event_bus.this.name
}

output "event_bus_arn" {
  description = "Bus ARN, the resource of stream_notifier's events:PutEvents permission."
  value       = aws_cloudwatch_event_bus.this.arn
}

output "traffic_log_group_name" {
  description = "CloudWatch log group receiving every completed-request event."
  value       = aws_cloudwatch_log_group.traffic.name
}

output "traffic_event_pattern" {
  description = "Event pattern of the traffic rule; terraform tests assert on it."
  value       = aws_cloudwatch_event_rule.traffic.event_pattern
}

output "cleanup_rule_name" {
  description = "Name of the schedule rule; the local emulator fires it."
  value       = aws_cloudwatch_event_rule.cleanup.name
}

output "cleanup_schedule" {
  description = "Schedule expression of the cleanup rule."
  value       = aws_cloudwatch_event_rule.cleanup.schedule_expression
}

output "cleanup_target" {
  description = "ARN and permission qualifier the cleanup schedule invokes (the alias with snap_start); terraform tests assert on them."
  value       = { arn = aws_cloudwatch_event_target.cleanup.arn, qualifier = aws_lambda_permission.cleanup.qualifier }
}
