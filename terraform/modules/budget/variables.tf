variable "name" {
  type        = string
  description = "Budget name (unique in the account)."
}

variable "monthly_usd" {
  type        = number
  description = "Monthly cost limit in USD that the notifications are percentages of."

  validation {
    condition     = var.monthly_usd > 0
    error_message = "monthly_usd must be more than 0."
  }
}

variable "topic_arn" {
  type        = string
  description = "SNS topic the notifications go to. Its access policy must allow budgets.amazonaws.com to sns:Publish."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$", var.topic_arn))
    error_message = "A budget alarm needs an SNS topic ARN to send to (alarm_topic_arn)."
  }
}

variable "notifications" {
  type = list(object({
    type    = string
    percent = number
  }))
  description = "When to notify: ACTUAL (spent so far) or FORECASTED (AWS's month-end forecast) above a percentage of monthly_usd."
  default = [
    { type = "ACTUAL", percent = 80 },
    { type = "ACTUAL", percent = 100 },
    { type = "FORECASTED", percent = 100 },
  ]

  validation {
    condition     = alltrue([for n in var.notifications : contains(["ACTUAL", "FORECASTED"], n.type) && n.percent > 0])
    error_message = "Each notification has type ACTUAL or FORECASTED and a percent above 0."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the budget."
  default     = {}
}
