output "bucket_name" {
  description = "Bucket name, BODY_BUCKET of the forward Lambda (root output body_bucket_name)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "Bucket ARN, the base of the forward Lambda's object permissions."
  value       = aws_s3_bucket.this.arn
}
