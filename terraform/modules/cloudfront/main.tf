# CloudFront in front of the function URL: the tunnels' own hostnames on the function_url edge
# (issue 23; shared/README.md "The live web: the streaming edge (design)"). A function URL answers
# only on its own <url-id>.lambda-url.<region>.on.aws name, so <id>.<domain> needs a distribution
# with a wildcard alias and a us-east-1 certificate in front of it.
#
# Nothing is cached, nothing is compressed (a compressing edge buffers, and the answer's own
# Content-Encoding passes through), every method goes through. The viewer-request function copies
# the viewer's Host and address into x-tunnel-host / x-tunnel-viewer-address; the origin adds the
# secret header x-tunnel-origin-verify; forward_stream believes the first two only with the third
# (httptunnel.edge_origin) and answers a direct call to the function URL 403 edge_bypass.
# CloudFront waits at most origin_read_timeout (120 s, its maximum) for the first byte and between
# packets: a subdomain URL's answer may be silent that long, a path URL on the function URL 15 min.
# moto has no CloudFront Functions or policies: the root creates this module only with a domain,
# which the local stack never sets.
#
# A caller's WebSocket on a tunnel's hostname (issue 24): the function sends a handshake
# (Sec-WebSocket-Key present) to the second origin, the caller WebSocket API with its stage as
# the origin path (cf.selectRequestOriginById), with the app's path and query in x-tunnel-target;
# that origin gets the same secret header, and caller_connect believes the three headers only
# with it (httptunnel.caller_ws.through_cloudfront). The behaviour, so its policies, is the default
# one: AllViewerExceptHostHeader forwards Sec-WebSocket-* and leaves Host to the origin
# (execute-api answers only on its own name).

locals {
  origin_id        = "function-url"
  caller_origin_id = "caller-websocket" # viewer_request.js CALLER_ORIGIN
  # AWS managed policies, by id (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html,
  # .../using-managed-origin-request-policies.html); ids never change, and the data sources that
  # look them up are null under terraform test's mock provider.
  caching_disabled_policy_id       = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad" # Managed-CachingDisabled
  all_viewer_except_host_policy_id = "b689b0a8-53d0-40ab-baf2-68738e2966ac" # Managed-AllViewerExceptHostHeader
  secret_header                    = "x-tunnel-origin-verify"               # httptunnel.edge_origin.SECRET_HEADER
  origin_domain_name               = trimsuffix(trimprefix(var.origin_url, "https://"), "/")
  caller_origin_domain_name        = trimsuffix(trimprefix(var.caller_api_endpoint, "wss://"), "/")
  all_methods                      = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
}

# The secret origin header's value: 64 characters from Secrets Manager's generator, frozen at its
# first read (terraform_data keeps it; the data source would give a new one at every plan) and
# replaced only when secret_version changes. It is in the state twice whatever we do (here and in
# the distribution's origin, which CloudFront stores in plain text too): it proves "came through
# CloudFront", nothing more. Never an output.
data "aws_secretsmanager_random_password" "origin_secret" {
  password_length     = 64
  exclude_punctuation = true
}

resource "terraform_data" "origin_secret" {
  input            = sensitive(data.aws_secretsmanager_random_password.origin_secret.random_password)
  triggers_replace = [var.secret_version]

  lifecycle {
    ignore_changes = [input]
  }
}

resource "aws_ssm_parameter" "origin_secret" {
  #checkov:skip=CKV_AWS_337:as the JWT secret: the aws/ssm key, decryptable through SSM by forward_stream's role alone
  name             = var.secret_parameter_name
  description      = "Secret header CloudFront adds to requests to the function URL (x-tunnel-origin-verify); forward_stream compares it"
  type             = "SecureString"
  value_wo         = terraform_data.origin_secret.output
  value_wo_version = var.secret_version
}

resource "aws_cloudfront_function" "viewer_request" {
  name    = "${var.name}-viewer-request"
  runtime = "cloudfront-js-2.0"
  comment = "http-tunnel: the viewer's Host and address for forward_stream; WebSocket handshakes to the caller API"
  publish = true
  code    = file("${path.module}/viewer_request.js")
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_68:WAF is the operator's choice (root cloudfront_web_acl_id): a web ACL costs $5/month plus per rule and request, and tunnels carry arbitrary apps
  #checkov:skip=CKV2_AWS_47:WAF is the operator's choice (web_acl_id, with whatever rules suit the apps tunnelled): a web ACL costs $5/month plus per rule and request
  #checkov:skip=CKV_AWS_86:access logs need an S3 bucket with ACLs; forward_stream already logs one line per request (status, tunnel, duration)
  #checkov:skip=CKV_AWS_310:no failover group: the two origins serve different requests (the function URL, the caller WebSocket API), and retrying a non-idempotent request elsewhere is wrong for a tunnel
  #checkov:skip=CKV_AWS_305:no default root object: every path belongs to a tunnel's own app
  #checkov:skip=CKV_AWS_374:no geo restriction: tunnels are public URLs, and per-tunnel IP rules are the edge policy's
  #checkov:skip=CKV2_AWS_32:no response headers policy: the tunnel's app sets its own headers, which must pass through unchanged
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  comment         = "${var.name}: tunnels on the function URL edge"
  aliases         = var.aliases
  price_class     = var.price_class
  web_acl_id      = var.web_acl_id == "" ? null : var.web_acl_id

  # Two origins alike but for host and path: the function URL (the default behaviour's), and the
  # caller WebSocket API's stage, which only WebSocket handshakes reach (the viewer-request function
  # selects it by id; no behaviour targets it). Both get the secret header. origin_read_timeout
  # also covers the caller API's $connect, which waits up to 20 s for the agent
  # (httptunnel.caller_ws.CALLER_OPEN_WAIT_S) inside API Gateway's 29 s.
  dynamic "origin" {
    for_each = {
      (local.origin_id)        = { domain_name = local.origin_domain_name, origin_path = "" }
      (local.caller_origin_id) = { domain_name = local.caller_origin_domain_name, origin_path = "/${var.caller_stage_name}" }
    }

    content {
      origin_id   = origin.key
      domain_name = origin.value.domain_name
      origin_path = origin.value.origin_path

      custom_origin_config {
        http_port                = 80
        https_port               = 443
        origin_protocol_policy   = "https-only"
        origin_ssl_protocols     = ["TLSv1.2"]
        origin_read_timeout      = var.origin_read_timeout
        origin_keepalive_timeout = 60
      }

      custom_header {
        name  = local.secret_header
        value = terraform_data.origin_secret.output
      }
    }
  }

  default_cache_behavior {
    target_origin_id         = local.origin_id
    viewer_protocol_policy   = "redirect-to-https"
    allowed_methods          = local.all_methods
    cached_methods           = ["GET", "HEAD"]
    compress                 = false
    cache_policy_id          = local.caching_disabled_policy_id
    origin_request_policy_id = local.all_viewer_except_host_policy_id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.viewer_request.arn
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }
}

# A and AAAA alias records of every alias, as modules/domain does for API Gateway's names.
# Z2FDTNDATAQYW2 is every distribution's zone; the attribute says so without writing it here.
resource "aws_route53_record" "this" {
  for_each = var.hosted_zone_id == "" ? {} : { for pair in setproduct(var.aliases, ["A", "AAAA"]) : "${pair[0]} ${pair[1]}" => { name = pair[0], type = pair[1] } }

  zone_id = var.hosted_zone_id
  name    = each.value.name
  type    = each.value.type

  alias {
    name                   = aws_cloudfront_distribution.this.domain_name
    zone_id                = aws_cloudfront_distribution.this.hosted_zone_id
    evaluate_target_health = false
  }
}
