output "web_acl_arn" {
  description = "The ACL's ARN: what aws_cloudfront_distribution.web_acl_id takes for WAFv2."
  value       = aws_wafv2_web_acl.this.arn
}

output "scope" {
  description = "The ACL's scope: CLOUDFRONT (the only scope a CloudFront distribution takes)."
  value       = aws_wafv2_web_acl.this.scope
}

output "region" {
  description = "The region the ACL was created through: us-east-1 (the precondition refuses any other)."
  value       = data.aws_region.current.name
}
