"""The imports tests' clients: an admin's, of an app with an import worker in its process or with none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.core.settings import Settings
from tests.imports.api import client_of, quick


@pytest.fixture
async def api(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app with a worker in its process."""
    async with client_of(quick(settings), database_url) as client:
        yield client


@pytest.fixture
async def idle(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app with no worker in its process: jobs stay queued, or go to the worker processes
    a test starts."""
    async with client_of(settings, database_url) as client:
        yield client
