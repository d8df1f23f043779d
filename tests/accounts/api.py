"""Accounts as tests make them: create one with a known password, and sign in with it."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "a password long enough"


async def account(client: httpx.AsyncClient, email: str, role: str, password: str = PASSWORD) -> dict[str, Any]:
    created = await client.post("/api/users", json={"email": email, "password": password, "role": role})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(
        "/api/access/token", data={"username": email, "password": password, "grant_type": "password"}
    )
