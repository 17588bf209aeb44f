# Observability (modules/observability): which alarms exist for which inputs, what they watch,
# the dashboard and its URL. Offline: mocked AWS provider. tests/infra/test_terraform.py runs it.

mock_provider "aws" {
  source = "./tests/mocks" # the ARNs and endpoints the root parses (tests/mocks/aws.tfmock.hcl)
}

# The agents' secret generator (versions.tf) gets a real provider configured offline, and the
# runs bring their own key material so it is never opened (wiring.tftest.hcl says why).
provider "aws" {
  alias                       = "secret_generator"
  region                      = "us-east-1"
  access_key                  = "mock"
  secret_key                  = "mock"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

variables {
  build_dir                 = "./tests/fixtures/build"
  jwt_secret_ssm_parameter  = "/tunnel/jwt"
  request_id_key_ssm_prefix = "/tunnel/request-id-key-" # own key material: the generator is never opened

  # What the runs that call modules/observability on its own give it (the root module ignores
  # the names it does not declare).
  name_prefix            = "http-tunnel"
  aws_region             = "us-east-1"
  function_names         = { forward = "http-tunnel-forward", cleanup = "http-tunnel-cleanup" }
  forward_log_group_name = "/aws/lambda/http-tunnel-forward"
  cleanup_log_group_name = "/aws/lambda/http-tunnel-cleanup"
  error_codes            = { timeout = 504, tunnel_not_found = 404 }
  http_api_id            = "abc123"
  http_stage_name        = "$default"
  websocket_api_id       = "def456"
  websocket_stage_name   = "prod"
  tables                 = { pending = { name = "http-tunnel-pending-requests" } }
}

# aws.us_east_1 (waf.tf, for the WAF ACL): unused here (waf_enabled is off), but terraform test
# configures every provider of the root, and the real one would look for credentials.
mock_provider "aws" {
  alias = "us_east_1"
}

run "defaults" {
  command = apply

  assert {
    condition = toset(keys(module.observability.alarms)) == toset(concat(
      ["tunnel-payload-too-large", "tunnel-agent-gone", "tunnel-internal-error", "tunnel-response-too-large", "tunnel-local-service-unavailable", "tunnel-timeout"],
      ["http-5xx", "http-4xx", "account-concurrency", "dynamodb-throttles-connections", "dynamodb-throttles-pending", "answers-consumed-writes"],
      [for fn in ["connect", "disconnect", "response", "forward", "forward-stream", "cleanup", "stream-notifier", "caller-connect", "caller-message", "caller-disconnect"] : "lambda-errors-${fn}"],
      [for fn in ["connect", "disconnect", "response", "forward", "forward-stream", "cleanup", "stream-notifier", "caller-connect", "caller-message", "caller-disconnect"] : "lambda-throttles-${fn}"],
    ))
    error_message = "default alarms: one per alarmed tunnel error code, HTTP 4xx/5xx, account concurrency, DynamoDB per table, errors and throttles per function (no forward ceiling unless one is set)"
  }

  assert {
    condition = module.observability.alarms["answers-consumed-writes"].expression == "FILL(writes, 0) - 4 * FILL(requests, 0)" && module.observability.alarms["answers-consumed-writes"].threshold == 1000 && anytrue([
      for m in module.observability.alarms["answers-consumed-writes"].metrics :
      m.id == "writes" && m.namespace == "AWS/DynamoDB" && m.name == "ConsumedWriteCapacityUnits" && m.stat == "Sum"
    ])
    error_message = "the answers table's consumed writes beyond 4 WRU per public request alarm from 1000 a period"
  }

  assert {
    condition     = alltrue([for a in module.observability.alarms : a.alarm_actions == toset([output.alarm_topic_arn]) && a.ok_actions == toset([output.alarm_topic_arn]) && a.treat_missing_data == "notBreaching"])
    error_message = "every alarm notifies the alarm topic (alarm and OK) and treats missing data as fine"
  }

  assert {
    condition     = length(module.observability.alarm_email_endpoints) == 0 && output.alarm_topic_arn == "arn:aws:sns:us-east-1:123456789012:http-tunnel-alarms"
    error_message = "the topic http-tunnel-alarms exists; no e-mail subscription without alarm_email"
  }

  assert {
    condition     = alltrue([for code in keys(local.tunnel_error_codes) : strcontains(module.observability.metric_filters["TunnelErrors"].pattern, "$.error_code = \"${code}\"")])
    error_message = "the TunnelErrors filter lists every x-tunnel-error code"
  }

  assert {
    condition     = module.observability.metric_filters["TunnelErrors"].dimensions == tomap({ ErrorCode = "$.error_code" }) && module.observability.metric_filters["TunnelErrors"].log_group_name == "/aws/lambda/http-tunnel-forward"
    error_message = "TunnelErrors reads forward's log group and splits by ErrorCode"
  }

  assert {
    condition     = module.observability.metric_filters["ActiveTunnels"].log_group_name == "/aws/lambda/http-tunnel-cleanup" && module.observability.metric_filters["ActiveTunnels"].value == "$.live_connections"
    error_message = "ActiveTunnels is cleanup's live_connections"
  }

  assert {
    condition     = module.observability.alarms["tunnel-timeout"].expression == "IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)" && module.observability.alarms["tunnel-timeout"].threshold == 5
    error_message = "a tunnel error alarm is the code's share of the HTTP API's requests, from 20 requests a period"
  }

  assert {
    condition = anytrue([
      for m in module.observability.alarms["tunnel-timeout"].metrics :
      m.id == "errors" && m.namespace == "HttpTunnel/http-tunnel" && m.name == "TunnelErrors" && m.dimensions == tomap({ ErrorCode = "timeout" }) && m.stat == "Sum"
    ])
    error_message = "the timeout alarm counts TunnelErrors{ErrorCode=timeout}"
  }

  assert {
    condition     = module.observability.alarms["account-concurrency"].threshold == 800
    error_message = "account concurrency alarms at 80% of the default 1000"
  }

  assert {
    condition     = output.dashboard_url == "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/http-tunnel"
    error_message = "dashboard_url points at the dashboard in the console"
  }

  assert {
    condition = [for w in jsondecode(module.observability.dashboard_body).widgets : w.properties.title] == [
      "Requests per second (public HTTP API)", "Latency, caller's view (ms)", "Errors by x-tunnel-error code, and all 4xx/5xx",
      "Active tunnels (sampled by cleanup) and new agent connections", "Lambda concurrency", "Lambda errors and throttles",
      "DynamoDB throttled events", "forward duration (ms)",
    ]
    error_message = "dashboard: request rate, latency, errors by code, active tunnels, concurrency, Lambda errors, DynamoDB, forward duration"
  }

  assert {
    condition     = [for m in jsondecode(module.observability.dashboard_body).widgets[1].properties.metrics : m[6].stat] == ["p50", "p90", "p99"]
    error_message = "latency widget shows p50, p90 and p99"
  }
}

run "email_and_forward_ceiling" {
  command = apply

  variables {
    alarm_email       = "ops@example.com"
    function_settings = { forward = { reserved_concurrency = 50 } }
  }

  assert {
    condition     = module.observability.alarm_email_endpoints == ["ops@example.com"]
    error_message = "alarm_email subscribes that address to the topic"
  }

  assert {
    condition     = module.observability.alarms["forward-concurrency"].threshold == 40
    error_message = "with a forward ceiling of 50, its alarm fires at 40 (80%)"
  }

  assert {
    condition     = contains([for a in jsondecode(module.observability.dashboard_body).widgets[4].properties.annotations.horizontal : a.value], 50)
    error_message = "the concurrency widget marks forward's ceiling"
  }
}

run "thresholds" {
  command = apply

  variables {
    lambda_concurrency_limit = 10
    alarm_thresholds = {
      min_requests         = 100
      tunnel_error_percent = { local_service_unavailable = 0, tunnel_not_found = 30 }
    }
  }

  assert {
    condition     = !contains(keys(module.observability.alarms), "tunnel-local-service-unavailable") && module.observability.alarms["tunnel-tunnel-not-found"].threshold == 30
    error_message = "0 turns a code's alarm off; any code can be given a threshold"
  }

  assert {
    condition     = module.observability.alarms["account-concurrency"].threshold == 8 && module.observability.alarms["tunnel-timeout"].threshold == 5
    error_message = "a 10-unit account alarms at 8; codes not given keep their defaults"
  }

  assert {
    condition     = module.observability.alarms["http-5xx"].expression == "IF(requests >= 100, 100 * FILL(errors, 0) / requests, 0)"
    error_message = "min_requests reaches the rate expressions"
  }
}

run "all_off" {
  command = apply

  variables {
    alarms_enabled    = false
    dashboard_enabled = false
  }

  assert {
    condition     = length(module.observability.alarms) == 0 && module.observability.dashboard_body == ""
    error_message = "alarms_enabled / dashboard_enabled = false create none"
  }

  assert {
    condition     = output.dashboard_url == "" && output.alarm_topic_arn != ""
    error_message = "no dashboard URL without a dashboard; the topic stays (the budget alarm uses it)"
  }
}

# The module owns the checks of what the root passes through unchanged (alarm_email,
# alarm_thresholds, lambda_concurrency_limit). A root run cannot name a module's variable in
# expect_failures, so these runs call the module itself ("thresholds" and "email_and_forward_ceiling"
# above show that root values reach it; tests/infra/test_terraform.py plans the root with bad ones).
run "the_module_on_its_own_plans_with_the_default_thresholds" {
  command = plan

  module {
    source = "./modules/observability"
  }

  assert {
    condition     = output.alarms["tunnel-timeout"].threshold == 5 && output.alarms["account-concurrency"].threshold == 800
    error_message = "the inputs the rejects_* runs below share are valid: only their thresholds make them fail"
  }
}

run "rejects_bad_email" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    alarm_email = "not-an-address"
  }

  expect_failures = [var.alarm_email]
}

run "rejects_a_concurrency_limit_under_one" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    account_concurrency_limit = 0
  }

  expect_failures = [var.account_concurrency_limit]
}

run "rejects_unknown_error_code" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    thresholds = { tunnel_error_percent = { tunnel_bored = 5 } }
  }

  expect_failures = [var.thresholds]
}

run "rejects_odd_period" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    thresholds = { period_seconds = 90 }
  }

  expect_failures = [var.thresholds]
}

run "rejects_a_period_under_a_minute" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    thresholds = { period_seconds = 0 }
  }

  expect_failures = [var.thresholds]
}

run "rejects_zero_evaluation_periods" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    thresholds = { evaluation_periods = 0 }
  }

  expect_failures = [var.thresholds]
}

run "rejects_concurrency_over_100_percent" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    thresholds = { concurrency_percent = 101 }
  }

  expect_failures = [var.thresholds]
}
