"""The OpenAPI document is the contract: every route, body and error answer is in it."""

from __future__ import annotations

from typing import Any

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


BULK_ROUTES = {
    ("post", "/api/developers/bulk"): {"201", "400", "409", "413", "415", "503"},
    ("patch", "/api/developers"): {"200", "400", "404", "409", "413", "503"},
    ("post", "/api/developers/bulk-delete"): {"200", "400", "413", "503"},
}


async def test_openapi_describes_the_bulk_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/"), ref
        return dict(schemas[ref.removeprefix("#/components/schemas/")])

    for (method, path), statuses in BULK_ROUTES.items():
        responses = doc["paths"][path][method]["responses"]
        assert set(responses) == statuses, (method, path)
        for status in statuses - {"200", "201"}:
            assert list(responses[status]["content"]) == ["application/problem+json"], (method, path, status)
        success = responses["201" if "201" in statuses else "200"]["content"]["application/json"]["schema"]
        assert resolve(success)["type"] == "object"

    imports = doc["paths"]["/api/developers/bulk"]["post"]
    content = imports["requestBody"]["content"]
    assert list(content) == ["application/json", "application/x-ndjson", "text/csv"]
    assert content["application/json"]["schema"]["type"] == "array"
    row = resolve(content["application/json"]["schema"]["items"])
    assert set(row["required"]) == {"name", "email", "specialty"}
    assert resolve(content["application/x-ndjson"]["schema"]) == row
    assert content["text/csv"]["schema"]["type"] == "string"
    (on_conflict,) = [p for p in imports["parameters"] if p["name"] == "on_conflict"]
    assert on_conflict["in"] == "query"
    assert on_conflict["schema"]["enum"] == ["error", "skip", "update"]

    batch = doc["paths"]["/api/developers"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["type"] == "array"
    assert set(resolve(batch["items"])["properties"]) == {"id", "name", "email", "specialty"}
    deletion = doc["paths"]["/api/developers/bulk-delete"]["post"]["requestBody"]["content"]["application/json"]
    assert resolve(deletion["schema"])["properties"]["ids"]["type"] == "array"
