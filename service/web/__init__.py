"""What every HTTP request and answer passes through: the controller base, route decorators, problem details, the API
document, request bodies, and the ASGI layers (commit before answer, body arrival, security headers, observation)."""
