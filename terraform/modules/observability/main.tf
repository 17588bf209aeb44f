# Watching a running tunnel: the alarm topic (owned here; the budget alarm sends to it too),
# two metrics read from the functions' JSON logs, CloudWatch alarms and one dashboard.
# Metric names and dimensions: AWS/ApiGateway HTTP APIs
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html),
# AWS/Lambda (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html),
# AWS/DynamoDB ReadThrottleEvents / WriteThrottleEvents (TableName[, GlobalSecondaryIndexName]).

data "aws_caller_identity" "current" {}

locals {
  namespace = "HttpTunnel/${var.name_prefix}"
  t         = var.thresholds
  period    = var.thresholds.period_seconds

  # Per-code alarm thresholds (percent of requests). 404/400 are callers' mistakes: counted, not alarmed.
  default_error_percent = {
    payload_too_large         = 5
    agent_gone                = 5
    internal_error            = 1
    response_too_large        = 5
    local_service_unavailable = 25
    timeout                   = 5
  }
  error_percent = {
    for code, pct in merge(local.default_error_percent, var.thresholds.tunnel_error_percent) :
    code => pct if pct > 0 && contains(keys(var.error_codes), code)
  }

  http_dims = { ApiId = var.http_api_id, Stage = var.http_stage_name }
  ws_dims   = { ApiId = var.websocket_api_id, Stage = var.websocket_stage_name }
  requests  = { id = "requests", metric = { namespace = "AWS/ApiGateway", name = "Count", dimensions = local.http_dims, stat = "Sum" } }
  forward   = var.function_names["forward"]
  ceiling   = var.forward_reserved_concurrency > 0 ? var.forward_reserved_concurrency : 0

  # One shape for every alarm: metric queries, exactly one with return_data.
  rate_alarms = merge(
    {
      for code, pct in local.error_percent : "tunnel-${replace(code, "_", "-")}" => {
        description = "forward answered ${var.error_codes[code]} ${code} (x-tunnel-error) to >= ${pct}% of requests in ${local.period} s"
        threshold   = pct
        queries = [
          { id = "errors", metric = { namespace = local.namespace, name = "TunnelErrors", dimensions = { ErrorCode = code }, stat = "Sum" } },
          local.requests,
        ]
      }
    },
    {
      "http-5xx" = {
        description = "the public HTTP API answered 5xx (tunnel errors and the local apps' own) to >= ${local.t.http_5xx_percent}% of requests in ${local.period} s"
        threshold   = local.t.http_5xx_percent
        queries = [
          { id = "errors", metric = { namespace = "AWS/ApiGateway", name = "5xx", dimensions = local.http_dims, stat = "Sum" } },
          local.requests,
        ]
      }
      "http-4xx" = {
        description = "the public HTTP API answered 4xx (unknown tunnels, 413, 429 throttling, the local apps' own) to >= ${local.t.http_4xx_percent}% of requests in ${local.period} s"
        threshold   = local.t.http_4xx_percent
        queries = [
          { id = "errors", metric = { namespace = "AWS/ApiGateway", name = "4xx", dimensions = local.http_dims, stat = "Sum" } },
          local.requests,
        ]
      }
    },
  )

  count_alarms = merge(
    {
      for fn, name in var.function_names : "lambda-errors-${replace(fn, "_", "-")}" => {
        description = "${name}: >= ${local.t.lambda_errors} invocation errors (unhandled exceptions, timeouts) in ${local.period} s"
        threshold   = local.t.lambda_errors
        queries     = [{ id = "m", metric = { namespace = "AWS/Lambda", name = "Errors", dimensions = { FunctionName = name }, stat = "Sum" } }]
      }
    },
    {
      for fn, name in var.function_names : "lambda-throttles-${replace(fn, "_", "-")}" => {
        description = "${name}: >= ${local.t.lambda_throttles} throttled invocations in ${local.period} s (concurrency exhausted)"
        threshold   = local.t.lambda_throttles
        queries     = [{ id = "m", metric = { namespace = "AWS/Lambda", name = "Throttles", dimensions = { FunctionName = name }, stat = "Sum" } }]
      }
    },
    {
      "account-concurrency" = {
        description = "Lambda concurrency claimed in ${var.aws_region} reached ${local.t.concurrency_percent}% of the account limit (${var.account_concurrency_limit}): every function in the account is about to be throttled"
        threshold   = ceil(var.account_concurrency_limit * local.t.concurrency_percent / 100)
        queries     = [{ id = "m", metric = { namespace = "AWS/Lambda", name = "ClaimedAccountConcurrency", dimensions = {}, stat = "Maximum" } }]
      }
    },
    local.ceiling == 0 ? {} : {
      "forward-concurrency" = {
        description = "${local.forward}: concurrency reached ${local.t.concurrency_percent}% of its reserved ceiling (${local.ceiling}); beyond it callers get 503s"
        threshold   = ceil(local.ceiling * local.t.concurrency_percent / 100)
        queries     = [{ id = "m", metric = { namespace = "AWS/Lambda", name = "ConcurrentExecutions", dimensions = { FunctionName = local.forward }, stat = "Maximum" } }]
      }
    },
    {
      for key, table in var.tables : "dynamodb-throttles-${replace(key, "_", "-")}" => {
        description = "${table.name}: >= ${local.t.dynamodb_throttles} throttled read/write events (table and indexes) in ${local.period} s"
        threshold   = local.t.dynamodb_throttles
        queries = concat(
          [
            { id = "reads", metric = { namespace = "AWS/DynamoDB", name = "ReadThrottleEvents", dimensions = { TableName = table.name }, stat = "Sum" } },
            { id = "writes", metric = { namespace = "AWS/DynamoDB", name = "WriteThrottleEvents", dimensions = { TableName = table.name }, stat = "Sum" } },
          ],
          [for i, index in table.indexes : { id = "index${i}", metric = { namespace = "AWS/DynamoDB", name = "ReadThrottleEvents", dimensions = { TableName = table.name, GlobalSecondaryIndexName = index }, stat = "Sum" } }],
        )
        expression = join(" + ", concat(["FILL(reads, 0)", "FILL(writes, 0)"], [for i, _ in table.indexes : "FILL(index${i}, 0)"]))
      }
    },
  )

  # The answers table's consumed writes beyond what the public requests explain (channel v2,
  # shared/README.md): answers for ids nobody asked for are refused without a write, so what
  # remains is a token holder's own traffic; a climb past this is worth a look.
  answer_alarms = var.answers_table == "" ? {} : {
    "answers-consumed-writes" = {
      description = "${var.answers_table}: consumed write units exceeded ${local.t.answer_writes_per_request} per public request by >= ${local.t.answer_writes_excess} in ${local.period} s"
      threshold   = local.t.answer_writes_excess
      queries = [
        { id = "writes", metric = { namespace = "AWS/DynamoDB", name = "ConsumedWriteCapacityUnits", dimensions = { TableName = var.answers_table }, stat = "Sum" } },
        local.requests,
      ]
      expression = "FILL(writes, 0) - ${local.t.answer_writes_per_request} * FILL(requests, 0)"
    }
  }

  # Rates: errors / requests, only once a period has min_requests (no alarm on 1 failure in 2).
  rate_expression = "IF(requests >= ${local.t.min_requests}, 100 * FILL(errors, 0) / requests, 0)"
  all_alarms = merge(
    { for k, a in local.rate_alarms : k => merge(a, { expression = local.rate_expression }) },
    { for k, a in local.count_alarms : k => merge({ expression = "" }, a) },
    local.answer_alarms,
  )
  # One type for every alarm (dimensions as map(string)), so for_each sees a map.
  alarms = {
    for k, a in local.all_alarms : k => {
      description = a.description
      threshold   = a.threshold
      expression  = a.expression
      queries = [
        for q in a.queries : {
          id         = q.id
          namespace  = q.metric.namespace
          name       = q.metric.name
          dimensions = tomap(q.metric.dimensions)
          stat       = q.metric.stat
        }
      ]
    } if var.alarms_enabled
  }
}

# ---------------------------------------------------------------- the alarm topic

resource "aws_sns_topic" "this" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms and AWS Budgets cannot publish to a topic under the AWS-managed aws/sns key; notifications carry alarm names and numbers, never request data
  name = "${var.name_prefix}-alarms"
  tags = var.tags
}

# Who may publish: CloudWatch alarms and AWS Budgets of this account only.
resource "aws_sns_topic_policy" "this" {
  arn = aws_sns_topic.this.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudWatchAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.this.arn
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      },
      {
        Sid       = "Budgets"
        Effect    = "Allow"
        Principal = { Service = "budgets.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.this.arn
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email != "" ? 1 : 0

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# ---------------------------------------------------------------- metrics from the logs

# One count per x-tunnel-error answer, dimension ErrorCode. The codes are listed (not `= *`) so
# nothing but a known, low-cardinality code ever becomes a dimension value.
resource "aws_cloudwatch_log_metric_filter" "tunnel_errors" {
  name           = "${var.name_prefix}-tunnel-errors"
  log_group_name = var.forward_log_group_name
  pattern        = "{ ($.status >= 400) && (${join(" || ", [for code in sort(keys(var.error_codes)) : "$.error_code = \"${code}\""])}) }"

  metric_transformation {
    name       = "TunnelErrors"
    namespace  = local.namespace
    value      = "1"
    unit       = "Count"
    dimensions = { ErrorCode = "$.error_code" }
  }
}

# Live connection rows, as counted by each complete cleanup run (every 5 minutes by default).
resource "aws_cloudwatch_log_metric_filter" "active_tunnels" {
  name           = "${var.name_prefix}-active-tunnels"
  log_group_name = var.cleanup_log_group_name
  pattern        = "{ ($.msg = \"cleanup run\") && ($.complete IS TRUE) && ($.live_connections >= 0) }"

  metric_transformation {
    name      = "ActiveTunnels"
    namespace = local.namespace
    value     = "$.live_connections"
    unit      = "Count"
  }
}

# ---------------------------------------------------------------- alarms

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = each.value.threshold
  evaluation_periods  = local.t.evaluation_periods
  datapoints_to_alarm = local.t.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  dynamic "metric_query" {
    for_each = each.value.queries
    content {
      id          = metric_query.value.id
      return_data = each.value.expression == "" && length(each.value.queries) == 1

      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.name
        dimensions  = metric_query.value.dimensions
        stat        = metric_query.value.stat
        period      = local.period
      }
    }
  }

  dynamic "metric_query" {
    for_each = each.value.expression == "" ? [] : [each.value.expression]
    content {
      id          = "result"
      expression  = metric_query.value
      label       = each.key
      return_data = true
    }
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_metric_filter.tunnel_errors]
}

# ---------------------------------------------------------------- dashboard

locals {
  fn_names = [for fn in sort(keys(var.function_names)) : var.function_names[fn]]
  annotations_concurrency = concat(
    [{ label = "account limit", value = var.account_concurrency_limit }],
    local.ceiling == 0 ? [] : [{ label = "forward ceiling", value = local.ceiling }],
  )

  widgets = [
    {
      title = "Requests per second (public HTTP API)"
      metrics = [
        [{ expression = "requests / PERIOD(requests)", label = "requests/s", id = "rps" }],
        ["AWS/ApiGateway", "Count", "ApiId", var.http_api_id, "Stage", var.http_stage_name, { id = "requests", stat = "Sum", visible = false }],
      ]
    },
    {
      title = "Latency, caller's view (ms)"
      metrics = [
        for p in ["p50", "p90", "p99"] :
        ["AWS/ApiGateway", "Latency", "ApiId", var.http_api_id, "Stage", var.http_stage_name, { stat = p, label = p }]
      ]
    },
    {
      title = "Errors by x-tunnel-error code, and all 4xx/5xx"
      metrics = [
        [{ expression = "SEARCH('{${local.namespace},ErrorCode} MetricName=\"TunnelErrors\"', 'Sum', 60)", label = "", id = "codes" }],
        ["AWS/ApiGateway", "5xx", "ApiId", var.http_api_id, "Stage", var.http_stage_name, { stat = "Sum", label = "all 5xx" }],
        ["AWS/ApiGateway", "4xx", "ApiId", var.http_api_id, "Stage", var.http_stage_name, { stat = "Sum", label = "all 4xx" }],
      ]
    },
    {
      title = "Active tunnels (sampled by cleanup) and new agent connections"
      metrics = [
        [local.namespace, "ActiveTunnels", { stat = "Maximum", period = 300, label = "active tunnels" }],
        ["AWS/ApiGateway", "ConnectCount", "ApiId", var.websocket_api_id, "Stage", var.websocket_stage_name, { stat = "Sum", label = "agent connects" }],
      ]
    },
    {
      title       = "Lambda concurrency"
      annotations = { horizontal = local.annotations_concurrency }
      metrics = [
        ["AWS/Lambda", "ClaimedAccountConcurrency", { stat = "Maximum", label = "claimed in the account" }],
        ["AWS/Lambda", "ConcurrentExecutions", { stat = "Maximum", label = "running in the account" }],
        ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.forward, { stat = "Maximum", label = "forward" }],
      ]
    },
    {
      title = "Lambda errors and throttles"
      metrics = concat(
        [for name in local.fn_names : ["AWS/Lambda", "Errors", "FunctionName", name, { stat = "Sum", label = "${name} errors" }]],
        [for name in local.fn_names : ["AWS/Lambda", "Throttles", "FunctionName", name, { stat = "Sum", label = "${name} throttles" }]],
      )
    },
    {
      title = "DynamoDB throttled events"
      metrics = flatten([
        for key in sort(keys(var.tables)) : concat(
          [
            ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", var.tables[key].name, { stat = "Sum", label = "${key} reads" }],
            ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", var.tables[key].name, { stat = "Sum", label = "${key} writes" }],
          ],
          [for index in var.tables[key].indexes : ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", var.tables[key].name, "GlobalSecondaryIndexName", index, { stat = "Sum", label = "${index} reads" }]],
        )
      ])
    },
    {
      title = "forward duration (ms)"
      metrics = [
        for p in ["p50", "p90", "p99"] :
        ["AWS/Lambda", "Duration", "FunctionName", local.forward, { stat = p, label = p }]
      ]
    },
  ]

  dashboard_name = var.name_prefix
  console_host   = lookup({ aws-cn = "console.amazonaws.cn", aws-us-gov = "console.amazonaws-us-gov.com" }, var.partition, "console.aws.amazon.com")
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.dashboard_enabled ? 1 : 0

  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = merge(
          {
            title   = w.title
            region  = var.aws_region
            view    = "timeSeries"
            stacked = false
            period  = 60
            metrics = w.metrics
          },
          can(w.annotations) ? { annotations = w.annotations } : {},
        )
      }
    ]
  })
}
