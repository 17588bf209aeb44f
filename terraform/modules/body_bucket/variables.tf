variable "bucket_prefix" {
  type        = string
  description = "Bucket name prefix (S3 appends a unique suffix, so names never collide across accounts)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,35}$", var.bucket_prefix))
    error_message = "bucket_prefix must be 2-36 lowercase letters, digits, '.' or '-'."
  }
}

variable "request_prefix" {
  type        = string
  description = "Key prefix of request bodies (httptunnel.names.REQUEST_BODY_PREFIX)."
  default     = "req/"
}

variable "response_prefix" {
  type        = string
  description = "Key prefix of response bodies (httptunnel.names.RESPONSE_BODY_PREFIX)."
  default     = "resp/"
}

variable "expiration_days" {
  type        = number
  description = "Days after which body objects are deleted (S3's smallest unit is one day)."
  default     = 1
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete a bucket that still holds body objects."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the bucket."
  default     = {}
}

variable "create_lifecycle" {
  type        = bool
  description = "Create the expiry lifecycle configuration. Only the local stack turns it off (moto never expires objects and the provider waits ~55 s for it)."
  default     = true
}

variable "tls_only_policy" {
  type        = bool
  description = "Attach the bucket policy that denies requests made without TLS. Only the local stack turns it off (moto, plain HTTP, cannot evaluate the condition and would refuse everything)."
  default     = true
}
