"""The HTTP layer: OpenAI-compatible routes, auth, limits, errors, request logs."""
