"""Operational routes and process tuning: liveness, readiness, the garbage collector's settings."""
