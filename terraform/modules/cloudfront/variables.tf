variable "name" {
  type        = string
  description = "Name of the CloudFront Function and prefix of the secret's SSM parameter path (the root's name_prefix)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lowercase letters, digits or '-' (CloudFront Function names are at most 64 characters)."
  }
}

variable "aliases" {
  type        = list(string)
  description = "Hostnames the distribution answers: <domain> (path URLs) and *.<domain> (subdomain URLs)."

  validation {
    condition     = length(var.aliases) >= 1 && alltrue([for a in var.aliases : can(regex("^(\\*\\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", a))])
    error_message = "aliases must be lowercase host names, optionally starting with \"*.\"."
  }
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate in us-east-1 covering every alias (CloudFront takes certificates from us-east-1 only)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN in us-east-1 (CloudFront uses no other region's certificates)."
  }
}

variable "origin_url" {
  type        = string
  description = "The function URL (https://<url-id>.lambda-url.<region>.on.aws/) the distribution sends every request to."

  validation {
    condition     = can(regex("^https://[a-z0-9.-]+/?$", var.origin_url))
    error_message = "origin_url must be a function URL: https://<url-id>.lambda-url.<region>.on.aws/."
  }
}

variable "caller_api_endpoint" {
  type        = string
  description = "The caller WebSocket API's endpoint (wss://<api-id>.execute-api.<region>.amazonaws.com, no stage): where the function sends WebSocket handshakes."

  validation {
    condition     = can(regex("^wss://[a-z0-9]+\\.execute-api\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/?$", var.caller_api_endpoint))
    error_message = "caller_api_endpoint must be a WebSocket API's endpoint: wss://<api-id>.execute-api.<region>.amazonaws.com."
  }
}

variable "caller_stage_name" {
  type        = string
  description = "The caller WebSocket API's stage: the second origin's path (API Gateway answers a socket only on /<stage>)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.caller_stage_name))
    error_message = "caller_stage_name must be 1-128 letters, digits, '-' or '_' (an API Gateway stage name)."
  }
}

variable "origin_read_timeout" {
  type        = number
  description = "Seconds CloudFront waits for the first byte and between two packets of an answer (1-120; the tunnel's limit for silence on subdomain URLs)."
  default     = 120

  validation {
    condition     = var.origin_read_timeout >= 1 && var.origin_read_timeout <= 120 && floor(var.origin_read_timeout) == var.origin_read_timeout
    error_message = "origin_read_timeout must be a whole number of seconds, 1-120 (CloudFront's range without a quota increase)."
  }
}

variable "secret_parameter_name" {
  type        = string
  description = "SSM SecureString the secret origin header's value is written to (write-only); forward_stream reads it (EDGE_ORIGIN_SECRET_SSM_PARAMETER)."

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+$", var.secret_parameter_name))
    error_message = "secret_parameter_name must be an SSM parameter path such as /http-tunnel/edge-origin-secret."
  }
}

variable "secret_version" {
  type        = number
  description = "Version of the generated origin secret; increase it to rotate (a new value goes to CloudFront and SSM in the same apply)."
  default     = 1

  validation {
    condition     = var.secret_version >= 1 && floor(var.secret_version) == var.secret_version
    error_message = "secret_version (edge_origin_secret_version at the root) must be a whole number >= 1."
  }
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 zone for A/AAAA alias records of every alias; empty = point them at the distribution yourself (output targets)."
  default     = ""
}

variable "price_class" {
  type        = string
  description = "CloudFront price class: PriceClass_All, PriceClass_200 or PriceClass_100 (fewer edge locations, lower prices)."
  default     = "PriceClass_All"

  validation {
    condition     = contains(["PriceClass_All", "PriceClass_200", "PriceClass_100"], var.price_class)
    error_message = "price_class (cloudfront_price_class at the root) must be PriceClass_All, PriceClass_200 or PriceClass_100."
  }
}

variable "web_acl_id" {
  type        = string
  description = "ARN of a WAFv2 web ACL (scope CLOUDFRONT, in us-east-1) to attach; empty = none."
  default     = ""

  validation {
    condition     = var.web_acl_id == "" || can(regex("^arn:aws[a-z-]*:wafv2:us-east-1:[0-9]{12}:global/webacl/", var.web_acl_id))
    error_message = "web_acl_id must be a WAFv2 web ACL ARN of scope CLOUDFRONT (arn:aws:wafv2:us-east-1:<account>:global/webacl/...)."
  }
}
