# Two on-demand tables. Names of keys, index and TTL attribute are a contract with the
# layer (shared/httptunnel/names.py); tests/infra/test_contract.py checks they match.

resource "aws_dynamodb_table" "connections" {
  #checkov:skip=CKV_AWS_28:point-in-time recovery is a variable (point_in_time_recovery); rows are ephemeral, so it is off by default
  #checkov:skip=CKV_AWS_119:rows are short-lived connection metadata; the AWS managed key (aws/dynamodb, what enabled = true without kms_key_arn selects) is enough and avoids a customer managed KMS key per deployment
  name         = "${var.name_prefix}-connections"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "connectionId"

  attribute {
    name = "connectionId"
    type = "S"
  }

  attribute {
    name = "tunnelId"
    type = "S"
  }

  global_secondary_index {
    name            = "tunnel-id-index"
    hash_key        = "tunnelId"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.deletion_protection

  tags = var.tags
}

resource "aws_dynamodb_table" "pending" {
  #checkov:skip=CKV_AWS_28:point-in-time recovery is a variable (point_in_time_recovery); rows live minutes, so it is off by default
  #checkov:skip=CKV_AWS_119:rows live at most minutes (TTL); the AWS managed key (aws/dynamodb, what enabled = true without kms_key_arn selects) is enough and avoids a customer managed KMS key per deployment
  name             = "${var.name_prefix}-pending-requests"
  billing_mode     = "PAY_PER_REQUEST"
  hash_key         = "requestId"
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  attribute {
    name = "requestId"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.deletion_protection

  tags = var.tags
}
