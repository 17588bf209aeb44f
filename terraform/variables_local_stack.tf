# Local stack only. `make stack` / `make dev` / the tests set these when they apply this root
# module to moto (emulator/mock_aws/terraform.py); a real deployment leaves every one of them at
# its default. They are kept apart from the production variables in variables.tf on purpose.

variable "public_http_url_override" {
  type        = string
  description = "LOCAL STACK ONLY: PUBLIC_HTTP_URL given to the functions instead of the API's own URL (the local stack sets its emulator's URL)."
  default     = ""
}

variable "public_stream_url_override" {
  type        = string
  description = "LOCAL STACK ONLY: forward_stream's PUBLIC_HTTP_URL (the emulator's function URL); on AWS it stays empty, as a function URL is https on 443."
  default     = ""
}

variable "ws_management_endpoint_override" {
  type        = string
  description = "LOCAL STACK ONLY: WS_MANAGEMENT_ENDPOINT given to the functions instead of https://<ws-api>.execute-api.../<stage> (the local stack sets its emulator's)."
  default     = ""
}

variable "local_fast_apply" {
  type        = bool
  description = "LOCAL STACK ONLY (moto): skip what only costs time there. Today: the body bucket's lifecycle configuration (the provider waits ~55 s for it; moto never expires objects). Never set it for a real deployment."
  default     = false
}

variable "local_plain_http" {
  type        = bool
  description = "LOCAL STACK ONLY (moto over plain HTTP): leave out the buckets' TLS-only policies. moto cannot evaluate their aws:SecureTransport condition and refuses every object request while they exist. Never set it for a real deployment."
  default     = false
}
