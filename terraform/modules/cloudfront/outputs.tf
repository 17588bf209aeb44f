output "distribution_id" {
  description = "The distribution's id (invalidations are never needed: nothing is cached)."
  value       = aws_cloudfront_distribution.this.id
}

output "domain_name" {
  description = "The distribution's own name (<id>.cloudfront.net): where every alias points."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "targets" {
  description = "Alias -> the distribution's name, for DNS managed outside Route 53 (CNAME, or an ALIAS/ANAME at the apex)."
  value       = { for alias in var.aliases : alias => aws_cloudfront_distribution.this.domain_name }
}

output "function_arn" {
  description = "ARN of the viewer-request CloudFront Function (copies the viewer's Host and address into headers)."
  value       = aws_cloudfront_function.viewer_request.arn
}

output "secret_parameter_name" {
  description = "The SSM SecureString holding the secret origin header's value (the name only, never the value)."
  value       = aws_ssm_parameter.origin_secret.name
}

output "web_acl_id" {
  description = "The WAFv2 web ACL attached to the distribution (its ARN), or null when none is."
  value       = aws_cloudfront_distribution.this.web_acl_id
}
