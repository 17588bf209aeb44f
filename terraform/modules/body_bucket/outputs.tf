output "bucket_name" {
  description = "Bucket name, BODY_BUCKET of the forward Lambda (root output body_bucket_name)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "Bucket ARN, the base of the forward Lambda's object permissions."
  value       = aws_s3_bucket.this.arn
}

output "policy" {
  description = "The bucket policy (JSON, \"\" when tls_only_policy is off); terraform tests assert that it refuses plain HTTP."
  value       = var.tls_only_policy ? aws_s3_bucket_policy.this[0].policy : ""
}

output "versioning_status" {
  description = "Enabled: a redirect to a big answer names one version; terraform tests assert on it."
  value       = one(aws_s3_bucket_versioning.this.versioning_configuration).status
}
