"""Which bulk statements each server gets: looked up once, where DevelopersBulkService is built."""

from __future__ import annotations

from service.core.database_urls import Backend
from service.developers.bulk.dialect import BulkSql
from service.developers.bulk.mariadb import MariaDBBulk
from service.developers.bulk.postgresql import PostgresBulk

_BULK_SQL: dict[Backend, BulkSql] = {"postgresql": PostgresBulk(), "mariadb": MariaDBBulk()}


def bulk_sql(backend: Backend) -> BulkSql:
    """The bulk statements of `backend` (stateless objects, one per server per process)."""
    return _BULK_SQL[backend]
