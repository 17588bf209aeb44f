variable "bucket_prefix" {
  type        = string
  description = "Bucket name prefix (S3 appends a unique suffix, so names never collide across accounts)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,35}$", var.bucket_prefix))
    error_message = "bucket_prefix must be 2-36 lowercase letters, digits, '.' or '-'."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the bucket while it still holds objects."
  default     = true
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

variable "versioning" {
  type        = bool
  description = "Enable versioning (the body bucket: a redirect to a big answer names the exact version forward checked). Off: the bucket is never versioned."
  default     = false
}

variable "lifecycle_rules" {
  type = list(object({
    id                           = string
    prefix                       = optional(string) # null: the whole bucket
    expiration_days              = optional(number)
    noncurrent_days              = optional(number)
    expired_object_delete_marker = optional(bool, false)
    abort_incomplete_upload_days = optional(number)
  }))
  description = "Lifecycle rules, all enabled, in order: delete current objects after expiration_days and old versions noncurrent_days after they were replaced, remove expired delete markers, abort multipart uploads left open. Empty: no lifecycle configuration at all."
  default     = []

  validation {
    condition = alltrue([for r in var.lifecycle_rules : (
      r.expiration_days != null || r.noncurrent_days != null || r.expired_object_delete_marker || r.abort_incomplete_upload_days != null
    )])
    error_message = "every lifecycle rule needs an action: expiration_days, noncurrent_days, expired_object_delete_marker or abort_incomplete_upload_days."
  }

  validation {
    condition     = !anytrue([for r in var.lifecycle_rules : r.expiration_days != null && r.expired_object_delete_marker])
    error_message = "a lifecycle rule cannot both expire objects after expiration_days and remove expired delete markers (S3 refuses the pair); make them two rules."
  }

  validation {
    condition     = length(distinct([for r in var.lifecycle_rules : r.id])) == length(var.lifecycle_rules)
    error_message = "lifecycle rule ids must be unique."
  }
}
