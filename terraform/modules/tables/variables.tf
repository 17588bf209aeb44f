variable "name_prefix" {
  type        = string
  description = "Prefix of the table names: <prefix>-connections and <prefix>-pending-requests."
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Enable DynamoDB point-in-time recovery on both tables (the rows are ephemeral, so off by default)."
  default     = false
}

variable "deletion_protection" {
  type        = bool
  description = "Enable DynamoDB deletion protection on both tables."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to both tables."
  default     = {}
}
