# Optional AWS Budgets alarm on the account's monthly cost: an email-free alarm path (SNS) so
# a runaway bill is noticed within hours, not at the end of the month. AWS Budgets refreshes
# cost data a few times a day, so this bounds the surprise, not the spend.

resource "aws_budgets_budget" "this" {
  name         = var.name
  budget_type  = "COST"
  limit_amount = format("%.2f", var.monthly_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "notification" {
    for_each = var.notifications
    content {
      comparison_operator       = "GREATER_THAN"
      threshold                 = notification.value.percent
      threshold_type            = "PERCENTAGE"
      notification_type         = notification.value.type
      subscriber_sns_topic_arns = [var.topic_arn]
    }
  }

  tags = var.tags
}
