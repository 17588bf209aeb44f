# Per-source limits where AWS allows them (issue 29 item 4): an AWS WAF web ACL with rate-based rules
# (modules/waf) attached to the CloudFront distribution in front of the function URL (web_acl_id).
# WAF cannot attach to an HTTP API or a WebSocket API, so waf_enabled needs the CloudFront edge:
# public_edge = "function_url" with domain_name; any other combination is refused at plan time (the
# validation below), never an ACL that guards nothing. The direct function URL cannot be used to walk
# around it: forward_stream answers 403 edge_bypass to a request without CloudFront's secret origin
# header (modules/cloudfront, httptunnel.edge_origin). Off by default: $5/month per ACL + $1 per rule
# (2 here) + $0.60 per million requests (README "Fair under flood", modules/waf/README.md).

# A CLOUDFRONT-scope web ACL is created through us-east-1 whatever the deployment's region
# (https://docs.aws.amazon.com/waf/latest/developerguide/how-aws-waf-works-resources.html): modules/waf
# gets this provider. Nothing else uses it, so a deployment without WAF never configures it.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = var.tags
  }
}

variable "waf_enabled" {
  type        = bool
  description = "Attach an AWS WAF web ACL (rate limits per source IP and per tunnel host, 429 past them) to the CloudFront distribution in front of the function URL. Needs public_edge = \"function_url\" and domain_name (CloudFront is where WAF attaches; it cannot attach to HTTP or WebSocket APIs). The ACL is created in us-east-1 whatever aws_region is. Costs $7/month + $0.60 per million requests."
  default     = false

  validation {
    condition     = !var.waf_enabled || (var.public_edge == "function_url" && var.domain_name != "")
    error_message = "waf_enabled = true needs the CloudFront edge: public_edge = \"function_url\" and a domain_name (with a us-east-1 certificate). AWS WAF attaches to the CloudFront distribution in front of the function URL; it cannot attach to the HTTP API (public_edge = \"http_api\") or to a WebSocket API, and without domain_name there is no distribution. Nothing would be protected, so no ACL is created: set both, or set waf_enabled = false."
  }

  validation {
    condition     = !var.waf_enabled || var.cloudfront_web_acl_id == ""
    error_message = "waf_enabled = true and cloudfront_web_acl_id both name the distribution's web ACL, which takes one: keep one of them (add your own rules to that ACL instead)."
  }
}

variable "waf_per_ip_limit" {
  type        = number
  description = "Requests one source IP may make per waf_evaluation_window_sec, across all tunnels, before WAF answers 429 (default 1200 a minute = 20/s). AWS WAF's lowest limit is 10."
  default     = 1200
}

variable "waf_per_tunnel_limit" {
  type        = number
  description = "Requests one tunnel host may receive per waf_evaluation_window_sec, from everyone together, before WAF answers 429 (default 1200 a minute = 20/s). AWS WAF's lowest limit is 10."
  default     = 1200
}

variable "waf_evaluation_window_sec" {
  type        = number
  description = "The window WAF counts the two limits over: 60, 120, 300 or 600 seconds (default 60). Checked by modules/waf."
  default     = 60
}

module "waf" {
  source = "./modules/waf"
  count  = var.waf_enabled && local.cloudfront ? 1 : 0

  providers = {
    aws = aws.us_east_1
  }

  name                  = "${var.name_prefix}-edge"
  per_ip_limit          = var.waf_per_ip_limit
  per_host_limit        = var.waf_per_tunnel_limit
  evaluation_window_sec = var.waf_evaluation_window_sec
}

output "web_acl_arn" {
  description = "The WAF web ACL attached to the CloudFront distribution (empty when waf_enabled is false)."
  value       = length(module.waf) == 1 ? module.waf[0].web_acl_arn : ""
}
