# One Lambda function: its log group (created first, with retention), its own role with
# exactly the statements the caller passes (least privilege per function), the function.

locals {
  log_group_name = "/aws/lambda/${var.function_name}"
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:function logs hold no bodies or tokens; the default CloudWatch encryption is enough
  #checkov:skip=CKV_AWS_338:retention is a variable (log_retention_days); a tunnel's logs are not kept for a year by default
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_iam_role" "this" {
  name = var.function_name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = var.function_name
  role   = aws_iam_role.this.id
  policy = local.policy
}

locals {
  # Writing its own logs is the only thing every function may do; the log group exists
  # already, so no logs:CreateLogGroup.
  logs_statement = {
    Sid      = "Logs"
    Effect   = "Allow"
    Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    Resource = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([local.logs_statement], [
      for s in var.policy_statements : {
        Sid      = s.sid
        Effect   = "Allow"
        Action   = sort(s.actions)
        Resource = s.resources
      }
    ])
  })
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:the functions only call AWS APIs (DynamoDB, S3, API Gateway, EventBridge); a VPC would add NAT cost and cold-start latency for nothing
  #checkov:skip=CKV_AWS_116:HTTP/WebSocket-facing functions are invoked synchronously (no DLQ applies); the stream mapping retries with ReportBatchItemFailures and the cleanup schedule re-runs
  #checkov:skip=CKV_AWS_173:environment holds names and URLs; a JWT secret belongs in SSM/Secrets Manager (jwt_secret_ssm_parameter / jwt_secret_arn), and Lambda encrypts env at rest with an AWS key
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile the user owns; zips are built reproducibly by scripts/package
  #checkov:skip=CKV_AWS_50:X-Ray tracing is a variable (tracing_mode), off by default to keep the roles minimal
  #checkov:skip=CKV_AWS_115:reserved concurrency is a per-function variable (reserved_concurrency); unset by default so a fresh account's low limit is not exhausted
  function_name    = var.function_name
  description      = var.description
  role             = aws_iam_role.this.arn
  handler          = var.handler
  runtime          = var.runtime
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = var.timeout
  s3_bucket        = var.s3_bucket
  s3_key           = var.s3_key
  source_code_hash = filebase64sha256(var.filename)
  layers           = var.layers
  publish          = var.snap_start # SnapStart snapshots published versions only

  dynamic "snap_start" {
    for_each = var.snap_start ? [1] : []
    content {
      apply_on = "PublishedVersions"
    }
  }

  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
}

# With SnapStart, callers must invoke a published version: the alias follows each new one, and
# the API integrations, their permissions, the stream mapping and the schedule target it.
resource "aws_lambda_alias" "live" {
  count = var.snap_start ? 1 : 0

  name             = "live"
  description      = "The published version callers invoke (SnapStart restores its snapshot)."
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version
}
