"""Revisions: frozen text, importing nothing of the service (an import-linter contract)."""
