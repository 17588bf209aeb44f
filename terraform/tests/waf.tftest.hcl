# modules/waf on its own (mocked AWS provider, offline): a CloudFront-scope web ACL whose two
# rate-based rules answer 429 per source IP and per tunnel host (issue 29). The root's waf_enabled
# (off by default) is checked by tests/infra/test_terraform.py's plan runs of the root module.
# tests/infra/test_terraform.py runs it.

# The provider the root passes (aws.us_east_1, waf.tf) and one of another region, to show the
# precondition reads the region of whatever provider the module is given.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
}

mock_provider "aws" {
  alias = "ireland"

  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
}

variables {
  name           = "http-tunnel-edge"
  per_ip_limit   = 1200
  per_host_limit = 600
}

run "rate_limits_per_source_ip_and_per_tunnel_host" {
  command = apply

  module {
    source = "./modules/waf"
  }

  assert {
    condition     = aws_wafv2_web_acl.this.scope == "CLOUDFRONT" && length(aws_wafv2_web_acl.this.default_action[0].allow) == 1
    error_message = "a CloudFront ACL that lets through what no rule blocks"
  }

  assert {
    condition     = output.scope == "CLOUDFRONT" && output.region == "us-east-1" && output.web_acl_arn == aws_wafv2_web_acl.this.arn
    error_message = "the outputs the root checks: scope, region, and the ARN for the distribution's web_acl_id"
  }

  assert {
    condition     = alltrue([for r in aws_wafv2_web_acl.this.rule : r.statement[0].rate_based_statement[0].evaluation_window_sec == 60])
    error_message = "both rules count over a minute by default"
  }

  assert {
    condition = ([for r in aws_wafv2_web_acl.this.rule : r.statement[0].rate_based_statement[0].limit] == [1200, 600]
    && [for r in aws_wafv2_web_acl.this.rule : r.statement[0].rate_based_statement[0].aggregate_key_type] == ["IP", "CUSTOM_KEYS"])
    error_message = "one rule per source IP, one per Host header, with the limits given"
  }

  assert {
    condition     = alltrue([for r in aws_wafv2_web_acl.this.rule : r.action[0].block[0].custom_response[0].response_code == 429])
    error_message = "both rules answer 429"
  }
}

run "refuses_a_limit_waf_does_not_take" {
  command = plan

  module {
    source = "./modules/waf"
  }

  variables {
    per_ip_limit = 5
  }

  expect_failures = [var.per_ip_limit]
}

run "refuses_a_provider_outside_us_east_1" {
  command = plan

  module {
    source = "./modules/waf"
  }

  providers = {
    aws = aws.ireland
  }

  expect_failures = [aws_wafv2_web_acl.this]
}

run "refuses_a_window_waf_does_not_take" {
  command = plan

  module {
    source = "./modules/waf"
  }

  variables {
    evaluation_window_sec = 30
  }

  expect_failures = [var.evaluation_window_sec]
}
