# AWS WAF web ACL for the CloudFront distribution in front of the function URL (issue 29):
# rate-based rules per source IP and per tunnel (the Host header: every tunnel is its own host in
# subdomain mode). WAF attaches to CloudFront and REST APIs, not to HTTP or WebSocket APIs, so this
# ACL is what per-source limits look like here. A CLOUDFRONT-scope ACL lives in us-east-1: pass this
# module a provider for us-east-1 (a precondition refuses any other region). Counts are WAF's own,
# shared by every edge location and forward instance (unlike httptunnel.fairness, counted per
# instance). In path mode every tunnel has the same Host, so the per-host rule counts them together.

# The region of the provider this module was given (read from its configuration, no API call).
data "aws_region" "current" {}

resource "aws_wafv2_web_acl" "this" {
  #checkov:skip=CKV2_AWS_31:WAF logging goes to Firehose/S3/CloudWatch at extra cost; the rules' CloudWatch metrics and sampled requests are on
  #checkov:skip=CKV_AWS_192:no Java on this edge (the Log4j managed rule group is a paid extra here)
  name        = var.name
  description = "Rate limits per source IP and per tunnel host (http-tunnel, issue 29)"
  scope       = "CLOUDFRONT"
  tags        = var.tags

  lifecycle {
    # AWS refuses scope CLOUDFRONT anywhere else ("The scope is not valid"), after the plan: say it at plan time
    precondition {
      condition     = data.aws_region.current.name == "us-east-1"
      error_message = "modules/waf creates a CLOUDFRONT-scope web ACL, which AWS accepts only in us-east-1: pass it a provider for us-east-1 (the root passes aws.us_east_1, waf.tf)."
    }
  }

  default_action {
    allow {}
  }

  rule {
    name     = "per-source-ip"
    priority = 1

    action {
      block {
        custom_response {
          response_code = 429
        }
      }
    }

    statement {
      rate_based_statement {
        limit                 = var.per_ip_limit
        evaluation_window_sec = var.evaluation_window_sec
        aggregate_key_type    = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-per-source-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "per-tunnel-host"
    priority = 2

    action {
      block {
        custom_response {
          response_code = 429
        }
      }
    }

    statement {
      rate_based_statement {
        limit                 = var.per_host_limit
        evaluation_window_sec = var.evaluation_window_sec
        aggregate_key_type    = "CUSTOM_KEYS"

        custom_key {
          header {
            name = "host"
            text_transformation {
              priority = 0
              type     = "LOWERCASE"
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-per-tunnel-host"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
}
