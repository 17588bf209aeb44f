"""http-tunnel Lambda layer: protocol, store, auth, routing, rewrite, API Gateway glue, logging."""

__version__ = "0.1.0"
