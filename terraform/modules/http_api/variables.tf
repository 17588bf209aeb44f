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
  description = "Burst limit of the stage default and of the $default route (requests)."
  default     = 100
}

variable "throttling_rate_limit" {
  type        = number
  description = "Steady rate limit of the stage default and of the $default route (requests per second)."
  default     = 20
}

variable "disable_execute_api_endpoint" {
  type        = bool
  description = "Switch off https://<api-id>.execute-api.<region>.amazonaws.com (only sensible with a custom domain mapped to the API)."
  default     = false
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
