variable "name" {
  type        = string
  description = "Web ACL name (also the prefix of its CloudWatch metrics)."
}

variable "per_ip_limit" {
  type        = number
  description = "Requests one source IP may make per evaluation window, across every tunnel; past it WAF answers 429 until the rate falls (WAF's minimum is 10)."

  validation {
    condition     = var.per_ip_limit >= 10 && var.per_ip_limit <= 2000000000
    error_message = "per_ip_limit must be 10 to 2,000,000,000 (AWS WAF's range for rate-based rules)."
  }
}

variable "per_host_limit" {
  type        = number
  description = "Requests one tunnel host may receive per evaluation window, from everyone together."

  validation {
    condition     = var.per_host_limit >= 10 && var.per_host_limit <= 2000000000
    error_message = "per_host_limit must be 10 to 2,000,000,000."
  }
}

variable "evaluation_window_sec" {
  type        = number
  description = "The window WAF counts requests over: 60, 120, 300 or 600 seconds."
  default     = 60

  validation {
    condition     = contains([60, 120, 300, 600], var.evaluation_window_sec)
    error_message = "evaluation_window_sec must be 60, 120, 300 or 600."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags of the web ACL."
  default     = {}
}
