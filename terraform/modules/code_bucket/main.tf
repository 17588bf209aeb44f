# Private bucket for the Lambda code zips (layer + one zip per function), apart from the body
# bucket: nothing an agent or a caller can reach by a presigned URL ever shares a bucket with
# code. Lambda reads the zips once per deployment.

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:build artifacts uploaded by terraform itself; CloudTrail records who changed them
  #checkov:skip=CKV_AWS_144:build artifacts are rebuilt from the repository; cross-region replication has no value
  #checkov:skip=CKV_AWS_145:SSE-S3 is used; SSE-KMS would add a key and grants for the Lambda service to read build artifacts
  #checkov:skip=CKV_AWS_21:each deployment uploads the zips again from build/; old versions are never read
  #checkov:skip=CKV2_AWS_61:a handful of zips replaced on each apply; nothing to expire
  #checkov:skip=CKV2_AWS_62:nothing reacts to code uploads; terraform updates the functions itself
  bucket_prefix = var.bucket_prefix
  force_destroy = true
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

locals {
  tls_only_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

resource "aws_s3_bucket_policy" "this" {
  count = var.tls_only_policy ? 1 : 0

  bucket = aws_s3_bucket.this.id
  policy = local.tls_only_policy

  depends_on = [aws_s3_bucket_public_access_block.this]
}
