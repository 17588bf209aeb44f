# Private bucket for bodies too big for one WebSocket message, and nothing else (the code zips
# live in their own bucket). Nothing is public: the forward Lambda hands out short-lived
# presigned URLs; every object expires within a day. Versioned, so that a redirect can name the
# exact version forward checked (an agent's later upload to the same key is another version).

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:objects are transient bodies deleted within a day; server access logs would need a second bucket and outlive the data
  #checkov:skip=CKV_AWS_144:transient bodies; replicating them to another region has no value
  #checkov:skip=CKV_AWS_145:SSE-S3 is used; SSE-KMS would need kms:GenerateDataKey/Decrypt for every presigned URL holder
  #checkov:skip=CKV2_AWS_62:nothing reacts to body uploads; the Lambdas learn about them through the WebSocket messages
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

# A 307 to a big answer is presigned for one VersionId: the caller downloads exactly the bytes
# forward checked, never what the agent's upload form puts under the key afterwards.
resource "aws_s3_bucket_versioning" "this" {
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

# The provider waits for three identical reads 10 s apart after writing a lifecycle
# configuration (~55 s, on AWS and moto alike); the local stack (which never expires
# objects anyway) turns it off with create_lifecycle = false.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.create_lifecycle ? 1 : 0

  bucket = aws_s3_bucket.this.id

  depends_on = [aws_s3_bucket_versioning.this]

  rule {
    id     = "expire-request-bodies"
    status = "Enabled"

    filter {
      prefix = var.request_prefix
    }

    expiration {
      days = var.expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.expiration_days
    }
  }

  rule {
    id     = "expire-response-bodies"
    status = "Enabled"

    filter {
      prefix = var.response_prefix
    }

    expiration {
      days = var.expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.expiration_days
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"

    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}
