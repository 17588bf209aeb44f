output "bucket_name" {
  description = "Bucket name (the body bucket's is BODY_BUCKET of the forward Lambda; the root module uploads the code zips to the code bucket's)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "Bucket ARN, the base of object permissions (forward's on the body bucket)."
  value       = aws_s3_bucket.this.arn
}

output "policy" {
  description = "The bucket policy (JSON, \"\" when tls_only_policy is off); terraform tests assert that it refuses plain HTTP."
  value       = var.tls_only_policy ? aws_s3_bucket_policy.this[0].policy : ""
}

output "versioning_status" {
  description = "Enabled when versioning is on, Disabled (never versioned) otherwise; terraform tests assert on it."
  value       = var.versioning ? one(aws_s3_bucket_versioning.this[0].versioning_configuration).status : "Disabled"
}

output "lifecycle_rule_ids" {
  description = "Ids of the lifecycle rules in force, in order (empty: no lifecycle configuration)."
  value       = [for r in var.lifecycle_rules : r.id]
}
