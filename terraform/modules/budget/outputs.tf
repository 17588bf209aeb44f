output "name" {
  description = "Budget name (root output budget_name; find it under Billing > Budgets)."
  value       = aws_budgets_budget.this.name
}

output "limit_amount" {
  description = "The monthly limit as AWS Budgets stores it (USD, two decimals); terraform tests assert on it."
  value       = aws_budgets_budget.this.limit_amount
}

output "notifications" {
  description = "\"<type> <percent> <topic ARNs>\" of each notification, sorted; terraform tests assert on it."
  value       = sort([for n in aws_budgets_budget.this.notification : "${n.notification_type} ${n.threshold} ${join(",", sort(n.subscriber_sns_topic_arns))}"])
}
