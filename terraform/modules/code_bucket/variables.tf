variable "bucket_prefix" {
  type        = string
  description = "Bucket name prefix (S3 appends a unique suffix, so names never collide across accounts)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,35}$", var.bucket_prefix))
    error_message = "bucket_prefix must be 2-36 lowercase letters, digits, '.' or '-'."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the bucket."
  default     = {}
}

variable "tls_only_policy" {
  type        = bool
  description = "Attach the bucket policy that denies requests made without TLS. Only the local stack turns it off (moto, plain HTTP, cannot evaluate the condition and would refuse everything)."
  default     = true
}
