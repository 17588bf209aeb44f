"""Local API Gateway emulator: HTTP API + WebSocket API + @connections, running the packaged Lambdas."""
