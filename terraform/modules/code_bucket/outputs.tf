output "bucket_name" {
  description = "Bucket name; the root module uploads the zips here (code/<name>.zip) for the functions and the layer."
  value       = aws_s3_bucket.this.bucket
}

output "policy" {
  description = "The bucket policy (JSON, \"\" when tls_only_policy is off); terraform tests assert that it refuses plain HTTP."
  value       = var.tls_only_policy ? aws_s3_bucket_policy.this[0].policy : ""
}
