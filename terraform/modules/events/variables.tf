variable "name" {
  type        = string
  description = "Bus name; also prefixes the rule names and the traffic log group /aws/events/<name>/traffic."
}

variable "event_source" {
  type        = string
  description = "Event source the traffic rule matches (httptunnel.names.EVENT_SOURCE)."
  default     = "http-tunnel"
}

variable "traffic_log_retention_days" {
  type        = number
  description = "Retention of the traffic log group in days."
}

variable "cleanup_schedule" {
  type        = string
  description = "Schedule expression of the cleanup run, e.g. rate(5 minutes)."

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.cleanup_schedule))
    error_message = "cleanup_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "cleanup_function_name" {
  type        = string
  description = "Name of the cleanup Lambda."
}

variable "cleanup_function_arn" {
  type        = string
  description = "ARN of the cleanup Lambda (schedule target)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the bus, rules and log group."
  default     = {}
}

variable "cleanup_qualifier" {
  type        = string
  description = "Alias the schedule invokes (the function module's qualifier output; null = the unqualified function)."
  default     = null
}
