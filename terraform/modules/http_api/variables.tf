variable "name" {
  type        = string
  description = "API name (also names the access log group /aws/apigateway/<name>)."
}

variable "function_name" {
  type        = string
  description = "Name of the forward Lambda the $default route invokes."
}

variable "invoke_arn" {
  type        = string
  description = "Invoke ARN of the forward Lambda."
}

variable "integration_timeout_ms" {
  type        = number
  description = "Integration timeout; 30000 is the HTTP API maximum (forward gives up at 25 s)."
  default     = 30000

  validation {
    condition     = var.integration_timeout_ms >= 50 && var.integration_timeout_ms <= 30000
    error_message = "integration_timeout_ms must be between 50 and 30000."
  }
}

variable "throttling_burst_limit" {
  type        = number
  description = "Stage default route burst limit."
  default     = 500
}

variable "throttling_rate_limit" {
  type        = number
  description = "Stage default route steady rate limit (requests per second)."
  default     = 1000
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the access log group in days."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the API, stage and log group."
  default     = {}
}

variable "qualifier" {
  type        = string
  description = "Alias the integration invokes (the function module's qualifier output; null = the unqualified function)."
  default     = null
}
