# Fairness under flood (issue 29; README "Fair under flood"). Operator ceilings: a tunnel's own
# policy (`lim`) can only lower them. Counted per warm Lambda instance (httptunnel.fairness):
# N instances admit up to N x the share; the stage throttle or forward_reserved_concurrency is the
# bound that holds whatever N is.

variable "tunnel_rate_limit" {
  type        = number
  description = "Requests per second one tunnel may receive (per warm forward instance); past it, 429 tunnel_rate_limited with Retry-After before any DynamoDB read. 0 = no per-tunnel rate."
  default     = 10

  validation {
    condition     = var.tunnel_rate_limit >= 0 && var.tunnel_rate_limit <= 10000
    error_message = "tunnel_rate_limit must be 0 (off) to 10000."
  }
}

variable "tunnel_burst_limit" {
  type        = number
  description = "Requests one tunnel may receive at once before its rate applies (token bucket size, per warm forward instance). 0 = the rate, at least 1."
  default     = 40

  validation {
    condition     = var.tunnel_burst_limit >= 0 && var.tunnel_burst_limit <= 5000
    error_message = "tunnel_burst_limit must be 0 to 5000."
  }
}

variable "tunnel_max_in_flight" {
  type        = number
  description = "Requests one tunnel may have waiting for its agent at once, per warm forward instance (on AWS an instance serves one request at a time, so this binds within the emulator and caps nothing more than the rate there). 0 = no ceiling."
  default     = 20

  validation {
    condition     = var.tunnel_max_in_flight >= 0 && floor(var.tunnel_max_in_flight) == var.tunnel_max_in_flight
    error_message = "tunnel_max_in_flight must be a whole number >= 0."
  }
}

variable "tunnel_max_open_streams" {
  type        = number
  description = "Requests one tunnel may hold open at once on the function URL edge (public_edge = function_url), counted across forward_stream's execution environments with a conditional DynamoDB write when a request has waited 250 ms for its agent, starts to stream, or comes to a tunnel its environment needed a lease for lately (found full in the last second, a lease in the last 10 s: taken before the post), and another after its answer (httptunnel.stream_holds: 2 writes per such request, $1.25 per million; a quick tunnel's buffered answer writes none). Each open request holds one environment of forward_reserved_concurrency; without this, one tunnel's streams (or an agent that never answers) can hold them all. Past it, 429 tunnel_rate_limited with Retry-After. 0 = off."
  default     = 8

  validation {
    condition     = var.tunnel_max_open_streams >= 0 && var.tunnel_max_open_streams <= 1000 && floor(var.tunnel_max_open_streams) == var.tunnel_max_open_streams
    error_message = "tunnel_max_open_streams must be a whole number from 0 (off) to 1000."
  }
}

variable "token_max_open_streams" {
  type        = number
  description = "Requests the tunnels of one agent token (its JWT sub) may hold open at once on the function URL edge, all together, counted like tunnel_max_open_streams (the same lease, on a second item keyed by the sub's SHA-256, taken after the tunnel's: 2 more writes per counted request, $2.50 per million in all with both on). Without it a holder with k tunnels holds k x tunnel_max_open_streams environments of forward_reserved_concurrency. Past it, 429 tunnel_rate_limited with Retry-After. Anonymous agents' tunnels are counted per tunnel only. 0 = off."
  default     = 8

  validation {
    condition     = var.token_max_open_streams >= 0 && var.token_max_open_streams <= 1000 && floor(var.token_max_open_streams) == var.token_max_open_streams
    error_message = "token_max_open_streams must be a whole number from 0 (off) to 1000."
  }
}

variable "agent_message_rate_limit" {
  type        = number
  description = "Messages per second one agent socket may send on $default (per warm response instance) before the socket is closed; it may reconnect within the $connect throttle and its token. 0 = no budget."
  default     = 30

  validation {
    condition     = var.agent_message_rate_limit >= 0 && var.agent_message_rate_limit <= 10000
    error_message = "agent_message_rate_limit must be 0 (off) to 10000."
  }
}

variable "agent_message_burst_limit" {
  type        = number
  description = "Messages one agent socket may send at once before agent_message_rate_limit applies."
  default     = 60

  validation {
    condition     = var.agent_message_burst_limit >= 0 && var.agent_message_burst_limit <= 5000
    error_message = "agent_message_burst_limit must be 0 to 5000."
  }
}

variable "tunnel_caller_message_rate_limit" {
  type        = number
  description = "Caller WebSocket messages per second one tunnel may receive, all its caller sockets together (per warm caller_message instance); the socket whose message goes over is closed (the app gets 1008, the caller 1000). 0 = no budget. Keep it below caller_message_throttling_rate_limit, the stage's share of every tunnel."
  default     = 50

  validation {
    condition     = var.tunnel_caller_message_rate_limit >= 0 && var.tunnel_caller_message_rate_limit <= 10000
    error_message = "tunnel_caller_message_rate_limit must be 0 (off) to 10000."
  }
}

variable "tunnel_caller_message_burst_limit" {
  type        = number
  description = "Caller WebSocket messages one tunnel may receive at once before tunnel_caller_message_rate_limit applies."
  default     = 100

  validation {
    condition     = var.tunnel_caller_message_burst_limit >= 0 && var.tunnel_caller_message_burst_limit <= 5000
    error_message = "tunnel_caller_message_burst_limit must be 0 to 5000."
  }
}

locals {
  # Caller WebSockets (issue 24): a caller's $connect counts as one request to its tunnel, and
  # its messages against the tunnel's caller message budget. Merged into each function's
  # environment by function name (main.tf, module "functions").
  fairness_caller_environment = {
    caller_connect = tomap(local.fairness_forward_environment)
    caller_message = tomap({
      CALLER_MESSAGE_RATE_LIMIT  = tostring(var.tunnel_caller_message_rate_limit)
      CALLER_MESSAGE_BURST_LIMIT = tostring(var.tunnel_caller_message_burst_limit)
    })
  }
  fairness_forward_environment = {
    TUNNEL_RATE_LIMIT    = tostring(var.tunnel_rate_limit)
    TUNNEL_BURST_LIMIT   = tostring(var.tunnel_burst_limit)
    TUNNEL_MAX_IN_FLIGHT = tostring(var.tunnel_max_in_flight)
  }
  fairness_stream_environment = {
    TUNNEL_MAX_OPEN_STREAMS = tostring(var.tunnel_max_open_streams)
    TOKEN_MAX_OPEN_STREAMS  = tostring(var.token_max_open_streams)
  }
  fairness_response_environment = {
    AGENT_MESSAGE_RATE_LIMIT  = tostring(var.agent_message_rate_limit)
    AGENT_MESSAGE_BURST_LIMIT = tostring(var.agent_message_burst_limit)
  }
}
