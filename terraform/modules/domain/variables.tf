variable "domain_name" {
  type        = string
  description = "Public HTTP domain, e.g. t.example.com."
}

variable "websocket_domain_name" {
  type        = string
  description = "WebSocket domain for the agents, e.g. ws.t.example.com."
}

variable "wildcard" {
  type        = bool
  description = "Also map *.<domain_name> to the HTTP API for subdomain routing."
  default     = true
}

variable "certificate_arn" {
  type        = string
  description = "Regional ACM certificate covering domain_name, *.domain_name and websocket_domain_name."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 zone for alias records; empty = manage DNS yourself."
  default     = ""
}

variable "http_api_id" {
  type        = string
  description = "HTTP API id."
}

variable "http_stage_id" {
  type        = string
  description = "HTTP API stage ($default): the stage resource's id, so each mapping waits for its stage (AWS answers \"Invalid stage identifier specified\" to a mapping created first)."
}

variable "websocket_api_id" {
  type        = string
  description = "WebSocket API id."
}

variable "websocket_stage_id" {
  type        = string
  description = "WebSocket stage mapped at the root of websocket_domain_name: the stage resource's id (its name), never a plain string, so the mapping is created after the stage."
}

variable "caller_websocket_domain_name" {
  type        = string
  description = "Domain of the caller WebSocket API (callers' sockets, issue 24), e.g. sockets.t.example.com; empty = none."
  default     = ""
}

variable "caller_websocket_api_id" {
  type        = string
  description = "Caller WebSocket API id (used when caller_websocket_domain_name is set)."
  default     = ""
}

variable "caller_websocket_stage_id" {
  type        = string
  description = "Caller WebSocket stage mapped at the root of caller_websocket_domain_name: the stage resource's id, so the mapping is created after the stage."
  default     = ""
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the domain names."
  default     = {}
}

variable "http_names" {
  type        = bool
  description = "Map domain_name (and *.domain_name) to the HTTP API; false when CloudFront serves them (public_edge = function_url): only the WebSocket name is made then."
  default     = true
}
