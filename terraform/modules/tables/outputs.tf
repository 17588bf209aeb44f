output "connections_table_name" {
  description = "Connections table name, passed to the functions as CONNECTIONS_TABLE."
  value       = aws_dynamodb_table.connections.name
}

output "connections_table_arn" {
  description = "Connections table ARN, used by the per-function IAM policies."
  value       = aws_dynamodb_table.connections.arn
}

output "tunnel_index_arn" {
  description = "ARN of the tunnel-id-index GSI, used by the IAM policies of functions that look connections up by tunnel id."
  value       = "${aws_dynamodb_table.connections.arn}/index/tunnel-id-index"
}

output "pending_table_name" {
  description = "Pending requests table name, passed to the functions as PENDING_TABLE."
  value       = aws_dynamodb_table.pending.name
}

output "pending_table_arn" {
  description = "Pending requests table ARN, used by the per-function IAM policies."
  value       = aws_dynamodb_table.pending.arn
}

output "pending_stream_arn" {
  description = "Stream ARN of the pending requests table, consumed by the stream_notifier event source mapping."
  value       = aws_dynamodb_table.pending.stream_arn
}
