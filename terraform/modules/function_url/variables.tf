variable "function_name" {
  type        = string
  description = "The function the URL invokes."
}

variable "qualifier" {
  type        = string
  description = "Alias the URL invokes (\"live\" with snap_start), or null for $LATEST."
  default     = null
}

variable "invoke_mode" {
  type        = string
  description = "RESPONSE_STREAM (the function streams its answer through the Runtime API) or BUFFERED (6 MB answers)."
  default     = "RESPONSE_STREAM"

  validation {
    condition     = contains(["RESPONSE_STREAM", "BUFFERED"], var.invoke_mode)
    error_message = "invoke_mode must be RESPONSE_STREAM or BUFFERED."
  }
}
