"""Access to the service: API keys with scopes, rate limits, body limits and browser security
headers (:mod:`serving.access.guard`)."""
