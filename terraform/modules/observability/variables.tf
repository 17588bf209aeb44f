variable "name_prefix" {
  type        = string
  description = "Prefix of every name: topic <prefix>-alarms, alarms <prefix>-<what>, dashboard <prefix>, metric namespace HttpTunnel/<prefix>."
}

variable "aws_region" {
  type        = string
  description = "Region of the deployment (dashboard widgets and the console URL)."
}

variable "partition" {
  type        = string
  description = "AWS partition (aws, aws-cn, aws-us-gov): picks the console host of dashboard_url."
  default     = "aws"
}

variable "alarms_enabled" {
  type        = bool
  description = "Create the CloudWatch alarms (they notify the alarm topic). The topic itself always exists: other alarms (the budget) send to it."
  default     = true
}

variable "dashboard_enabled" {
  type        = bool
  description = "Create the CloudWatch dashboard."
  default     = true
}

variable "alarm_email" {
  type        = string
  description = "E-mail address subscribed to the alarm topic (AWS sends a confirmation mail first); empty = no subscription."
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email (root and modules/observability) must be an e-mail address, or empty; got \"${var.alarm_email}\"."
  }
}

variable "function_names" {
  type        = map(string)
  description = "Short name (connect, disconnect, response, forward, cleanup, stream_notifier) -> Lambda function name."

  validation {
    condition     = contains(keys(var.function_names), "forward")
    error_message = "function_names must include forward."
  }
}

variable "forward_log_group_name" {
  type        = string
  description = "forward's log group: its one JSON line per request ({\"msg\": \"forwarded\", \"status\", \"error_code\"}) feeds the TunnelErrors metric."
}

variable "cleanup_log_group_name" {
  type        = string
  description = "cleanup's log group: its \"cleanup run\" line's live_connections feeds the ActiveTunnels metric."
}

variable "error_codes" {
  type        = map(number)
  description = "Every x-tunnel-error code forward answers with -> HTTP status (httptunnel.names.ERROR_CODES; the contract test checks the copy)."
}

variable "forward_reserved_concurrency" {
  type        = number
  description = "forward's reserved concurrency (its ceiling); -1 = none, then only the account limit is watched."
  default     = -1
}

variable "account_concurrency_limit" {
  type        = number
  description = "The account's Lambda concurrent-executions quota in this region (Service Quotas L-B99A9384; 1,000 by default, often 10 on new accounts)."
  default     = 1000

  validation {
    condition     = var.account_concurrency_limit >= 1
    error_message = "lambda_concurrency_limit (account_concurrency_limit of modules/observability) must be at least 1; got ${var.account_concurrency_limit}."
  }
}

variable "http_api_id" {
  type        = string
  description = "Public HTTP API id (AWS/ApiGateway metrics, dimension ApiId)."
}

variable "http_stage_name" {
  type        = string
  description = "Public HTTP API stage ($default), dimension Stage."
}

variable "websocket_api_id" {
  type        = string
  description = "Agents' WebSocket API id (dashboard: new agent connections)."
}

variable "websocket_stage_name" {
  type        = string
  description = "WebSocket API stage, dimension Stage."
}

variable "tables" {
  type = map(object({
    name    = string
    indexes = optional(list(string), [])
  }))
  description = "DynamoDB tables watched for throttling, keyed by a short name, with their global secondary indexes."
}

variable "thresholds" {
  type = object({
    period_seconds       = optional(number, 300)
    evaluation_periods   = optional(number, 1)
    min_requests         = optional(number, 20)
    tunnel_error_percent = optional(map(number), {})
    http_5xx_percent     = optional(number, 5)
    http_4xx_percent     = optional(number, 50)
    lambda_errors        = optional(number, 1)
    lambda_throttles     = optional(number, 1)
    concurrency_percent  = optional(number, 80)
    dynamodb_throttles   = optional(number, 1)
    # answers table: write units per public request that are normal (an answer row is 1-2 WRU,
    # forward's give-up row 1), and how many beyond that in one period raise the alarm
    answer_writes_per_request = optional(number, 4)
    answer_writes_excess      = optional(number, 1000)
  })
  description = "Alarm thresholds; see the module README. Rates are percent of the HTTP API's requests in one period, and only alarm once a period has min_requests. tunnel_error_percent is merged over the defaults per code; 0 turns a code's alarm off."
  default     = {}

  # The only checks of these values: the root module passes alarm_thresholds through unchanged,
  # so the messages name both.
  validation {
    condition     = var.thresholds.period_seconds >= 60 && var.thresholds.period_seconds % 60 == 0
    error_message = "alarm_thresholds.period_seconds (thresholds of modules/observability) must be a whole number of minutes in seconds (60, 120, 300, ...); got ${var.thresholds.period_seconds}."
  }

  validation {
    condition     = var.thresholds.evaluation_periods >= 1
    error_message = "alarm_thresholds.evaluation_periods (thresholds of modules/observability) must be at least 1; got ${var.thresholds.evaluation_periods}."
  }

  validation {
    condition     = var.thresholds.concurrency_percent > 0 && var.thresholds.concurrency_percent <= 100
    error_message = "alarm_thresholds.concurrency_percent (thresholds of modules/observability) must be in (0, 100]; got ${var.thresholds.concurrency_percent}."
  }

  validation {
    condition     = alltrue([for code in keys(var.thresholds.tunnel_error_percent) : contains(keys(var.error_codes), code)])
    error_message = "alarm_thresholds.tunnel_error_percent (thresholds of modules/observability) keys must be x-tunnel-error codes: ${join(", ", sort(keys(var.error_codes)))}."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module."
  default     = {}
}

variable "answers_table" {
  type        = string
  description = "The answers (pending requests) table whose consumed write units the answers-consumed-writes alarm watches; empty = no such alarm."
  default     = ""
}
