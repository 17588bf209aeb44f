# A private S3 bucket, the one shape both of the stack's buckets take (the root module calls it
# twice: body_bucket and code_bucket). Always: public access blocked, bucket-owner-enforced
# ownership (no ACLs), SSE-S3, and, unless the local stack turns it off, a bucket policy that
# denies every request not made over TLS. Per bucket (inputs): versioning, lifecycle rules.

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:body objects are deleted within a day and code zips are build artifacts terraform uploads itself; access logs would need a second bucket and outlive the data (CloudTrail records who changed the code)
  #checkov:skip=CKV_AWS_144:transient bodies and rebuildable code zips; replicating them to another region has no value
  #checkov:skip=CKV_AWS_145:SSE-S3 is used; SSE-KMS would need kms:GenerateDataKey/Decrypt for every presigned URL holder and grants for the Lambda service to read code
  #checkov:skip=CKV_AWS_21:versioning is an input: the body bucket has it (a redirect names one version); the code bucket's zips are uploaded again by each apply and old versions are never read
  #checkov:skip=CKV2_AWS_61:lifecycle rules are an input: the body bucket expires everything within a day; the code bucket holds a handful of zips replaced on each apply, nothing to expire
  #checkov:skip=CKV2_AWS_62:nothing reacts to uploads: the Lambdas learn about bodies through the WebSocket messages, and terraform updates the functions itself
  bucket_prefix = var.bucket_prefix
  force_destroy = var.force_destroy
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

resource "aws_s3_bucket_versioning" "this" {
  count = var.versioning ? 1 : 0

  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

# Plain-HTTP requests are refused, whoever signs them (presigned URLs and POST forms included).
# jsonencode, not aws_iam_policy_document: terraform test's mocked provider invents data sources.
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

# After writing a lifecycle configuration the provider waits for three identical reads 10 s
# apart (~55 s, on AWS and moto alike): the local stack passes no rules (local_fast_apply).
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  #checkov:skip=CKV_AWS_300:checkov also reads the code bucket, which has no rules and so no lifecycle configuration (count 0); the body bucket's rules abort stale uploads after a day (terraform test asserts it)
  count = length(var.lifecycle_rules) > 0 ? 1 : 0

  bucket = aws_s3_bucket.this.id

  depends_on = [aws_s3_bucket_versioning.this]

  dynamic "rule" {
    for_each = var.lifecycle_rules

    content {
      id     = rule.value.id
      status = "Enabled"

      filter {
        prefix = rule.value.prefix
      }

      dynamic "expiration" {
        for_each = rule.value.expiration_days != null || rule.value.expired_object_delete_marker ? [1] : []

        content {
          days                         = rule.value.expiration_days
          expired_object_delete_marker = rule.value.expired_object_delete_marker ? true : null
        }
      }

      dynamic "noncurrent_version_expiration" {
        for_each = rule.value.noncurrent_days == null ? [] : [1]

        content {
          noncurrent_days = rule.value.noncurrent_days
        }
      }

      dynamic "abort_incomplete_multipart_upload" {
        for_each = rule.value.abort_incomplete_upload_days == null ? [] : [1]

        content {
          days_after_initiation = rule.value.abort_incomplete_upload_days
        }
      }
    }
  }
}
