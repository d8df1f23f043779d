"""Operational routes: liveness, readiness (metrics come later)."""
