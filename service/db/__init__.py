"""Database layer: models, the SQLAlchemy plugin's configuration, migrations, embedded PostgreSQL."""
