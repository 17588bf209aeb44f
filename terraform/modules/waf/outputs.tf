output "web_acl_arn" {
  description = "The ACL's ARN: what aws_cloudfront_distribution.web_acl_id takes for WAFv2."
  value       = aws_wafv2_web_acl.this.arn
}
