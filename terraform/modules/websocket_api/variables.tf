variable "name" {
  type        = string
  description = "API name."
}

variable "stage_name" {
  type        = string
  description = "Stage name; part of the ws_url (wss://<id>.execute-api.<region>.amazonaws.com/<stage>)."
  default     = "prod"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.stage_name))
    error_message = "stage_name must be 1-128 letters, digits, '-' or '_'."
  }
}

variable "routes" {
  type = map(object({
    function_name = string
    invoke_arn    = string
    qualifier     = optional(string)
  }))
  description = "Route key ($connect, $disconnect, $default) -> the Lambda it invokes."

  validation {
    condition     = alltrue([for k in keys(var.routes) : contains(["$connect", "$disconnect", "$default"], k)])
    error_message = "Only $connect, $disconnect and $default routes are used (all agent messages go to $default)."
  }
}

variable "service_integrations" {
  type = map(object({
    integration_uri               = string # arn:<partition>:apigateway:<region>:<service>:path/...
    credentials_arn               = string # the role API Gateway assumes to call the service
    request_parameters            = map(string)
    request_templates             = map(string)
    template_selection_expression = string
  }))
  description = "Route key -> an AWS service integration (integration_type AWS, no Lambda) used instead of a route in routes."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.service_integrations) : contains(["$connect", "$disconnect", "$default"], k)])
    error_message = "service_integrations keys must be $connect, $disconnect or $default."
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

variable "route_throttles" {
  type = map(object({
    burst_limit = number
    rate_limit  = number
  }))
  description = "Route key -> its own throttling (burst requests, steady requests per second), tighter or looser than the stage default."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.route_throttles) : contains(["$connect", "$disconnect", "$default"], k)])
    error_message = "route_throttles keys must be routes of this API: $connect, $disconnect, $default."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the API and stage."
  default     = {}
}
