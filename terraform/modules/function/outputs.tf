output "function_name" {
  description = "Function name (root output function_names; API and event wiring)."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN callers invoke (event source mappings, EventBridge targets): the alias's with snap_start, else the function's."
  value       = var.snap_start ? aws_lambda_alias.live[0].arn : aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "Invoke ARN used by API Gateway integrations: the alias's with snap_start, else the function's."
  value       = var.snap_start ? aws_lambda_alias.live[0].invoke_arn : aws_lambda_function.this.invoke_arn
}

output "qualifier" {
  description = "The alias callers invoke (\"live\") with snap_start, else null: the qualifier of every lambda:InvokeFunction permission."
  value       = var.snap_start ? aws_lambda_alias.live[0].name : null
}

output "role_name" {
  description = "Name of the function's own IAM role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the function's own IAM role (the root's KMS key policy names it)."
  value       = aws_iam_role.this.arn
}

output "policy" {
  description = "The role's inline policy document (JSON); terraform tests assert on its actions."
  value       = local.policy
}

output "environment" {
  description = "Environment variables given to the function; terraform tests assert on them."
  value       = var.environment
  sensitive   = true
}

output "log_group_name" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "reserved_concurrency" {
  description = "Reserved concurrent executions (-1 = unreserved); the observability module alarms near it, terraform tests assert on it."
  value       = aws_lambda_function.this.reserved_concurrent_executions
}
