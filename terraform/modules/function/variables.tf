variable "function_name" {
  type        = string
  description = "Lambda function name; also the name of its role and policy; its log group is /aws/lambda/<name>."
}

variable "description" {
  type        = string
  description = "Function description."
  default     = ""
}

variable "handler" {
  type        = string
  description = "Handler entry point inside the zip."
  default     = "handler.handler"
}

variable "runtime" {
  type        = string
  description = "Lambda Python runtime."

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be python3.12 or python3.13."
  }
}

variable "architecture" {
  type        = string
  description = "Instruction set: arm64 or x86_64 (the layer must be built for the same one)."

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "memory_size" {
  type        = number
  description = "Memory in MB."
}

variable "timeout" {
  type        = number
  description = "Timeout in seconds."
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions; -1 means unreserved."
  default     = -1
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing mode: PassThrough or Active."
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "filename" {
  type        = string
  description = "Path of the function zip built by scripts/package (its hash decides when the code changes)."
}

variable "s3_bucket" {
  type        = string
  description = "Bucket holding the uploaded copy of the zip (the root module uploads it)."
}

variable "s3_key" {
  type        = string
  description = "Key of the uploaded zip in s3_bucket."
}

variable "layers" {
  type        = list(string)
  description = "Layer version ARNs."
  default     = []
}

variable "environment" {
  type        = map(string)
  description = "Environment variables (the names the layer's httptunnel.config reads)."
  default     = {}
}

variable "policy_statements" {
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
  }))
  description = "Allow statements of the function's own role, besides writing to its log group."
  default     = []
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group in days."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the function."
  default     = {}
}

variable "snap_start" {
  type        = bool
  description = "Lambda SnapStart (Python 3.12+): publish a version on every change and invoke it through the alias \"live\" (outputs invoke_arn, function_arn and qualifier then name the alias)."
  default     = false
}
