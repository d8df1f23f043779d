"""Database layer: models, the SQLAlchemy plugin's configuration, each write's isolation level, migrations,
embedded PostgreSQL."""
