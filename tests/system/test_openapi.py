"""The OpenAPI document is the contract: every route, body and error answer is in it."""

from __future__ import annotations

import httpx

EXPECTED = {
    ("get", "/api/developers"): {"200", "400", "503"},
    ("post", "/api/developers"): {"201", "400", "409", "503"},
    ("get", "/api/developers/{developer_id}"): {"200", "400", "404", "503"},
    ("patch", "/api/developers/{developer_id}"): {"200", "400", "404", "409", "503"},
    ("delete", "/api/developers/{developer_id}"): {"204", "400", "404", "503"},
    ("get", "/health"): {"200"},
    ("get", "/ready"): {"200", "503"},
}


async def test_openapi_describes_every_route_and_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    operations = {(m, p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    for key, statuses in EXPECTED.items():
        assert set(operations[key]["responses"]) == statuses, key
        for status in statuses - {"200", "201", "204"} - ({"503"} if key[1] == "/ready" else set()):
            content = operations[key]["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (key, status)
    schemas = doc["components"]["schemas"]
    assert set(schemas["Developer"]["required"]) == {"id", "name", "email", "specialty", "created_at", "updated_at"}
    assert schemas["DeveloperCreate"]["properties"]["name"]["maxLength"] == 200
    create_body = operations[("post", "/api/developers")]["requestBody"]["content"]["application/json"]["schema"]
    assert create_body["$ref"].endswith("/DeveloperCreate")


async def test_schema_ui_is_served(client: httpx.AsyncClient) -> None:
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]
