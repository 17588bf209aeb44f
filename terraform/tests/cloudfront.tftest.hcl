# modules/cloudfront on its own (mocked AWS provider, offline): CloudFront in front of the function
# URL for the tunnels' own hostnames. wiring.tftest.hcl checks when the root creates it;
# tests/unit/test_cloudfront_function.py runs the viewer-request function's JavaScript under Node.
# tests/infra/test_terraform.py runs this.

mock_provider "aws" {
  mock_data "aws_secretsmanager_random_password" {
    defaults = { random_password = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01" }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = { domain_name = "d111111abcdef8.cloudfront.net", hosted_zone_id = "Z2FDTNDATAQYW2" }
  }
  mock_resource "aws_cloudfront_function" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:function/http-tunnel-viewer-request" }
  }
}

variables {
  name                  = "http-tunnel"
  aliases               = ["t.example.com", "*.t.example.com"]
  certificate_arn       = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
  origin_url            = "https://abcdefurl.lambda-url.eu-west-1.on.aws/"
  caller_api_endpoint   = "wss://callerapi1.execute-api.eu-west-1.amazonaws.com"
  caller_stage_name     = "callers"
  secret_parameter_name = "/http-tunnel/edge-origin-secret"
  hosted_zone_id        = "Z123"
}

run "a_pass_through_edge_in_front_of_the_function_url" {
  command = apply

  module {
    source = "./modules/cloudfront"
  }

  assert {
    condition     = toset(aws_cloudfront_distribution.this.aliases) == toset(["t.example.com", "*.t.example.com"]) && aws_cloudfront_distribution.this.enabled
    error_message = "the apex (path URLs) and the wildcard (subdomain URLs) are the distribution's names"
  }

  assert {
    condition = (one(aws_cloudfront_distribution.this.viewer_certificate).acm_certificate_arn == var.certificate_arn
      && one(aws_cloudfront_distribution.this.viewer_certificate).ssl_support_method == "sni-only"
    && one(aws_cloudfront_distribution.this.viewer_certificate).minimum_protocol_version == "TLSv1.2_2021")
    error_message = "the us-east-1 certificate, SNI, TLS 1.2 at least"
  }

  assert {
    condition = (one(aws_cloudfront_distribution.this.default_cache_behavior).cache_policy_id == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    && one(aws_cloudfront_distribution.this.default_cache_behavior).origin_request_policy_id == "b689b0a8-53d0-40ab-baf2-68738e2966ac")
    error_message = "Managed-CachingDisabled and Managed-AllViewerExceptHostHeader, by their literal ids"
  }

  assert {
    condition = (one(aws_cloudfront_distribution.this.default_cache_behavior).compress == false
    && toset(one(aws_cloudfront_distribution.this.default_cache_behavior).allowed_methods) == toset(["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]))
    error_message = "nothing compressed (nothing held back), every method passes"
  }

  assert {
    condition = (one(one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "function-url"]).custom_origin_config).origin_read_timeout == 120
      && one(one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "function-url"]).custom_origin_config).origin_protocol_policy == "https-only"
      && one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "function-url"]).domain_name == "abcdefurl.lambda-url.eu-west-1.on.aws"
    && one(aws_cloudfront_distribution.this.default_cache_behavior).target_origin_id == "function-url")
    error_message = "the default behaviour's origin is the function URL's bare host over HTTPS, with CloudFront's longest read timeout (120 s)"
  }

  assert {
    condition = (length(aws_cloudfront_distribution.this.origin) == 2
      && one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "caller-websocket"]).domain_name == "callerapi1.execute-api.eu-west-1.amazonaws.com"
      && one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "caller-websocket"]).origin_path == "/callers"
      && one(one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "caller-websocket"]).custom_origin_config).origin_protocol_policy == "https-only"
      && toset(one(one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "caller-websocket"]).custom_origin_config).origin_ssl_protocols) == toset(["TLSv1.2"])
    && one(one([for o in aws_cloudfront_distribution.this.origin : o if o.origin_id == "caller-websocket"]).custom_origin_config).origin_read_timeout >= 30)
    error_message = "the second origin is the caller WebSocket API's bare host with its stage as the path, over HTTPS, waiting past $connect's 29 s"
  }

  assert {
    condition = alltrue([for o in aws_cloudfront_distribution.this.origin : one(o.custom_header).name == "x-tunnel-origin-verify"
    && nonsensitive(one(o.custom_header).value) == "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"])
    error_message = "CloudFront adds the generated secret as x-tunnel-origin-verify (httptunnel.edge_origin.SECRET_HEADER) to both origins: caller_connect believes the handshake's headers only with it"
  }

  assert {
    condition     = strcontains(aws_cloudfront_function.viewer_request.code, "cf.selectRequestOriginById(CALLER_ORIGIN)") && strcontains(aws_cloudfront_function.viewer_request.code, "var CALLER_ORIGIN = 'caller-websocket';") && startswith(aws_cloudfront_function.viewer_request.code, "import cf from 'cloudfront';\n")
    error_message = "the function selects the caller API's origin by the id declared here (the cloudfront module imported on its first line)"
  }

  assert {
    condition     = aws_ssm_parameter.origin_secret.type == "SecureString" && aws_ssm_parameter.origin_secret.name == "/http-tunnel/edge-origin-secret" && aws_ssm_parameter.origin_secret.value_wo_version == 1
    error_message = "the secret goes write-only into a SecureString forward_stream reads"
  }

  assert {
    condition = (aws_cloudfront_function.viewer_request.runtime == "cloudfront-js-2.0" && aws_cloudfront_function.viewer_request.publish
      && aws_cloudfront_function.viewer_request.code == file("./modules/cloudfront/viewer_request.js")
      && one(one(aws_cloudfront_distribution.this.default_cache_behavior).function_association).event_type == "viewer-request"
    && one(one(aws_cloudfront_distribution.this.default_cache_behavior).function_association).function_arn == aws_cloudfront_function.viewer_request.arn)
    error_message = "the viewer-request function (viewer_request.js, cloudfront-js-2.0) runs on every request"
  }

  assert {
    condition = (length(aws_route53_record.this) == 4 && alltrue([for r in aws_route53_record.this :
    r.zone_id == "Z123" && one(r.alias).name == "d111111abcdef8.cloudfront.net" && one(r.alias).zone_id == "Z2FDTNDATAQYW2"]))
    error_message = "A and AAAA alias records of both names point at the distribution"
  }

  assert {
    condition     = output.targets == { "t.example.com" = "d111111abcdef8.cloudfront.net", "*.t.example.com" = "d111111abcdef8.cloudfront.net" }
    error_message = "the DNS targets for operators who manage DNS themselves"
  }
}

run "dns_is_the_operators_without_a_zone" {
  command = apply

  module {
    source = "./modules/cloudfront"
  }

  variables {
    hosted_zone_id = ""
    price_class    = "PriceClass_100"
  }

  assert {
    condition     = length(aws_route53_record.this) == 0 && aws_cloudfront_distribution.this.price_class == "PriceClass_100"
    error_message = "no records without a zone; the price class is the operator's"
  }
}

run "refuses_a_certificate_outside_us_east_1" {
  command = plan

  module {
    source = "./modules/cloudfront"
  }

  variables {
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
  }

  expect_failures = [var.certificate_arn]
}

run "refuses_a_read_timeout_past_120" {
  command = plan

  module {
    source = "./modules/cloudfront"
  }

  variables {
    origin_read_timeout = 121
  }

  expect_failures = [var.origin_read_timeout]
}

run "refuses_an_unknown_price_class_and_a_zero_secret_version" {
  command = plan

  module {
    source = "./modules/cloudfront"
  }

  variables {
    price_class    = "PriceClass_1"
    secret_version = 0
  }

  expect_failures = [var.price_class, var.secret_version]
}

run "refuses_a_caller_origin_that_is_not_a_websocket_api" {
  command = plan

  module {
    source = "./modules/cloudfront"
  }

  variables {
    caller_api_endpoint = "https://callerapi1.execute-api.eu-west-1.amazonaws.com"
    caller_stage_name   = "live/x"
  }

  expect_failures = [var.caller_api_endpoint, var.caller_stage_name]
}
