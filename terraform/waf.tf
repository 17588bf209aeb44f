# Per-source limits where AWS allows them (issue 29 item 4): an AWS WAF web ACL with rate-based rules
# for the CloudFront distribution in front of the function URL (modules/waf). WAF cannot attach to an
# HTTP API or a WebSocket API. Off by default: $5/month per ACL + $1 per rule + $0.60 per million
# requests (modules/waf/README.md). The distribution takes `web_acl_arn` as its web_acl_id; the
# direct function URL must refuse what did not come through CloudFront (the secret origin header of
# the CloudFront edge), or WAF can be bypassed.

variable "waf_enabled" {
  type        = bool
  description = "Create the WAF web ACL (rate limits per source IP and per tunnel host) for the CloudFront distribution of the function URL edge. Costs $7/month + $0.60 per million requests."
  default     = false

  validation {
    condition     = !var.waf_enabled || var.public_edge == "function_url"
    error_message = "waf_enabled needs public_edge = \"function_url\" (CloudFront in front of it is where the ACL attaches; WAF cannot attach to HTTP or WebSocket APIs)."
  }

  validation {
    condition     = !var.waf_enabled || var.aws_region == "us-east-1"
    error_message = "waf_enabled: a CloudFront-scope web ACL lives in us-east-1. Deploy in us-east-1, or pass modules/waf a us-east-1 provider (the CloudFront edge's) in waf.tf."
  }
}

variable "waf_per_ip_limit" {
  type        = number
  description = "Requests one source IP may make per minute, across all tunnels, before WAF answers 429 (default 1200 = 20/s)."
  default     = 1200
}

variable "waf_per_tunnel_limit" {
  type        = number
  description = "Requests one tunnel host may receive per minute, from everyone together, before WAF answers 429 (default 1200 = 20/s)."
  default     = 1200
}

module "waf" {
  source = "./modules/waf"
  count  = var.waf_enabled ? 1 : 0

  name                  = "${var.name_prefix}-edge"
  per_ip_limit          = var.waf_per_ip_limit
  per_host_limit        = var.waf_per_tunnel_limit
  evaluation_window_sec = 60
}

output "web_acl_arn" {
  description = "The WAF web ACL for the CloudFront distribution's web_acl_id (empty when waf_enabled is false)."
  value       = var.waf_enabled ? module.waf[0].web_acl_arn : ""
}
