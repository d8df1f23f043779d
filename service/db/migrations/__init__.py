"""Alembic migrations: env.py and the frozen revisions under versions/."""
