# modules/private_bucket on its own (mocked AWS provider, offline): what every bucket of the stack
# always is, and what its inputs add. wiring.tftest.hcl checks which inputs each bucket gets.
# tests/infra/test_terraform.py runs it.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock-bucket", bucket = "mock-bucket" }
  }
}

variables {
  bucket_prefix = "http-tunnel-test-"
}

run "private_tls_only_unversioned_by_default" {
  command = apply

  module {
    source = "./modules/private_bucket"
  }

  assert {
    condition = (aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy
    && aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets)
    error_message = "every public access block setting must be on"
  }

  assert {
    condition     = one(aws_s3_bucket_ownership_controls.this.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "bucket-owner-enforced ownership: no ACLs"
  }

  assert {
    condition     = one(one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[*]).sse_algorithm[*]) == "AES256"
    error_message = "SSE-S3 by default"
  }

  assert {
    condition = jsondecode(output.policy) == {
      Version = "2012-10-17"
      Statement = [{
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = ["arn:aws:s3:::mock-bucket", "arn:aws:s3:::mock-bucket/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }]
    }
    error_message = "the policy is exactly the TLS-only deny, over the bucket and every object in it"
  }

  assert {
    condition     = aws_s3_bucket_policy.this[0].bucket == aws_s3_bucket.this.id && aws_s3_bucket.this.force_destroy
    error_message = "the policy is attached to the bucket; force_destroy defaults on"
  }

  assert {
    condition     = length(aws_s3_bucket_versioning.this) == 0 && output.versioning_status == "Disabled"
    error_message = "no versioning unless asked for"
  }

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this) == 0 && output.lifecycle_rule_ids == []
    error_message = "no lifecycle configuration without rules"
  }
}

run "versioned_with_the_body_buckets_lifecycle" {
  command = apply

  module {
    source = "./modules/private_bucket"
  }

  variables {
    versioning = true
    lifecycle_rules = [
      { id = "expire-request-bodies", prefix = "req/", expiration_days = 1, noncurrent_days = 1 },
      { id = "remove-expired-delete-markers", expired_object_delete_marker = true },
      { id = "abort-incomplete-uploads", abort_incomplete_upload_days = 1 },
    ]
  }

  assert {
    condition     = output.versioning_status == "Enabled"
    error_message = "versioning = true enables versioning"
  }

  assert {
    condition     = [for r in aws_s3_bucket_lifecycle_configuration.this[0].rule : [r.id, r.status]] == [["expire-request-bodies", "Enabled"], ["remove-expired-delete-markers", "Enabled"], ["abort-incomplete-uploads", "Enabled"]]
    error_message = "one enabled rule per input, in order"
  }

  # The mocked provider invents values for attributes left unset (a bucket-wide rule's prefix),
  # so this checks what each rule was given and which action blocks it has; that a bucket-wide
  # rule's filter stays empty was checked against a real plan (moto), from the old layout's state.
  assert {
    condition = [for r in aws_s3_bucket_lifecycle_configuration.this[0].rule : [
      length(r.expiration), length(r.noncurrent_version_expiration), length(r.abort_incomplete_multipart_upload)
    ]] == [[1, 1, 0], [1, 0, 0], [0, 0, 1]]
    error_message = "each rule has only the actions it was given"
  }

  assert {
    condition = (
      one(aws_s3_bucket_lifecycle_configuration.this[0].rule[0].filter).prefix == "req/"
      && one(aws_s3_bucket_lifecycle_configuration.this[0].rule[0].expiration).days == 1
      && one(aws_s3_bucket_lifecycle_configuration.this[0].rule[0].noncurrent_version_expiration).noncurrent_days == 1
      && one(aws_s3_bucket_lifecycle_configuration.this[0].rule[1].expiration).expired_object_delete_marker
      && one(aws_s3_bucket_lifecycle_configuration.this[0].rule[2].abort_incomplete_multipart_upload).days_after_initiation == 1
    )
    error_message = "a prefixed rule expires its objects and their old versions after the days given; delete markers and stale uploads are handled bucket-wide"
  }

  assert {
    condition     = jsondecode(output.policy).Statement[*].Sid == ["DenyInsecureTransport"]
    error_message = "versioning and lifecycle leave the TLS-only policy as it is"
  }
}

run "local_stack_without_tls_policy" {
  command = plan

  module {
    source = "./modules/private_bucket"
  }

  variables {
    tls_only_policy = false
  }

  assert {
    condition     = length(aws_s3_bucket_policy.this) == 0 && output.policy == ""
    error_message = "tls_only_policy = false (moto over plain HTTP) attaches no policy"
  }
}

run "rejects_a_rule_without_an_action" {
  command = plan

  module {
    source = "./modules/private_bucket"
  }

  variables {
    lifecycle_rules = [{ id = "nothing", prefix = "req/" }]
  }

  expect_failures = [var.lifecycle_rules]
}

run "rejects_expiry_and_delete_markers_in_one_rule" {
  command = plan

  module {
    source = "./modules/private_bucket"
  }

  variables {
    lifecycle_rules = [{ id = "both", expiration_days = 1, expired_object_delete_marker = true }]
  }

  expect_failures = [var.lifecycle_rules]
}

run "rejects_an_uppercase_prefix" {
  command = plan

  module {
    source = "./modules/private_bucket"
  }

  variables {
    bucket_prefix = "HTTP-Tunnel-"
  }

  expect_failures = [var.bucket_prefix]
}
