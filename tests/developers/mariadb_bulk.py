"""The bulk routes on MariaDB as tests drive them: rows put in by SQL (their triggers write their events), the
table and the change feed's events read back by SQL."""

from __future__ import annotations

import json
from typing import Any

from tests import mariadb


async def insert(url: str, *people: tuple[str, str, str]) -> list[int]:
    """Developers written by SQL, one statement each (the row triggers write their events): their ids."""
    ids = []
    for name, email, specialty in people:
        conn = await mariadb.connect(url)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(
                    "INSERT INTO developers (name, email, specialty) VALUES (%s, %s, %s)", (name, email, specialty)
                )
                ids.append(cursor.lastrowid)
        finally:
            conn.close()
    return ids


async def table(url: str) -> list[tuple[Any, ...]]:
    rows = await mariadb.fetch(
        url, "SELECT id, name, email, specialty, updated_at, version FROM developers ORDER BY id"
    )
    return [tuple(row) for row in rows]


async def by_email(url: str) -> dict[str, dict[str, Any]]:
    rows = await mariadb.fetch(url, "SELECT id, name, email, specialty, version FROM developers")
    return {
        row[2].lower(): dict(zip(("id", "name", "email", "specialty", "version"), row, strict=True)) for row in rows
    }


async def events(url: str, after: int = 0) -> list[dict[str, Any]]:
    """The events after id `after`, in the order written, JSON columns decoded."""
    rows = await mariadb.fetch(
        url,
        "SELECT id, op, developer_id, specialty, specialties, developer, bulk FROM developer_events "
        "WHERE id > %s AND op IN ('created', 'updated', 'deleted', 'bulk') ORDER BY id",
        after,
    )
    names = ("id", "op", "developer_id", "specialty", "specialties", "developer", "bulk")
    decoded = []
    for row in rows:
        event = dict(zip(names, row, strict=True))
        for key in ("specialties", "developer", "bulk"):
            event[key] = None if event[key] is None else json.loads(event[key])
        decoded.append(event)
    return decoded


async def last_event(url: str) -> int:
    return int(await mariadb.fetchval(url, "SELECT COALESCE(MAX(id), 0) FROM developer_events") or 0)
