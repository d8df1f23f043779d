"""The OpenAPI document is the contract: every route, body and error answer is in it."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import jsonschema_rs
import msgspec

import service.accounts.schemas
import service.developers.schemas
import service.system.health
import service.web.problems
from service.core.validation import EMAIL_PATTERN
from service.developers import keyset
from service.developers.events import cursor as cursors

API = {"400", "401", "403", "503"}  # every route behind a token
JSON_BODY = {"415"}  # every route with a JSON body
EXPECTED = {
    ("get", "/api/developers"): {"200", "304"} | API,
    ("post", "/api/developers"): {"201", "409"} | API | JSON_BODY,
    ("get", "/api/developers/{developer_id}"): {"200", "304", "404"} | API,
    ("get", "/api/developers/export"): {"200"} | API,
    ("patch", "/api/developers/{developer_id}"): {"200", "404", "409", "412", "428"} | API | JSON_BODY,
    ("delete", "/api/developers/{developer_id}"): {"204", "404", "412", "428"} | API,
    ("post", "/api/access/token"): {"200", "400", "401", "415", "429", "503"},
    ("get", "/api/users/me"): {"200", "404"} | API,
    ("get", "/api/users"): {"200"} | API,
    ("post", "/api/users"): {"201", "409"} | API | JSON_BODY,
    ("patch", "/api/users/{account_id}"): {"200", "404", "409"} | API | JSON_BODY,
    ("delete", "/api/users/{account_id}"): {"204", "404", "409"} | API,
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
        for status in statuses - {"200", "201", "204", "304"} - ({"503"} if key[1] == "/ready" else set()):
            content = operations[key]["responses"][status]["content"]
            # The token route's failures are OAuth2's own error responses (RFC 6749, 5.2).
            oauth2 = key[1] == "/api/access/token" and status in {"400", "401"}
            assert list(content) == ["application/json" if oauth2 else "application/problem+json"], (key, status)
    schemas = doc["components"]["schemas"]
    assert set(schemas["Developer"]["required"]) == {"id", "name", "email", "specialty", "created_at", "updated_at"}
    assert schemas["DeveloperCreate"]["properties"]["name"]["maxLength"] == 200
    create_body = operations[("post", "/api/developers")]["requestBody"]["content"]["application/json"]["schema"]
    assert create_body["$ref"].endswith("/DeveloperCreate")


async def test_openapi_offers_the_oauth2_password_flow(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    (name, scheme), *_ = doc["components"]["securitySchemes"].items()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/access/token"
    assert set(scheme["flows"]["password"]["scopes"]) == {"developers:read", "developers:write", "users:admin"}
    assert doc["security"] == [{name: []}]  # the default: any token
    sign_in = doc["paths"]["/api/access/token"]["post"]
    form = sign_in["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    if "$ref" in form:
        form = doc["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
    assert {"username", "password"} <= set(form["required"])
    assert form["properties"]["grant_type"]["const"] == "password", form["properties"]["grant_type"]
    error = sign_in["responses"]["400"]["content"]["application/json"]["schema"]
    error = doc["components"]["schemas"][error["$ref"].rsplit("/", 1)[1]]
    assert set(error["required"]) == {"error", "error_description"}
    assert set(error["properties"]["error"]["enum"]) == {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
    }


# What a generated client calls each operation: the handler's name in camelCase.
OPERATION_IDS = {
    ("get", "/api/developers"): "listDevelopers",
    ("post", "/api/developers"): "createDeveloper",
    ("patch", "/api/developers"): "updateDevelopers",
    ("get", "/api/developers/{developer_id}"): "getDeveloper",
    ("patch", "/api/developers/{developer_id}"): "updateDeveloper",
    ("delete", "/api/developers/{developer_id}"): "deleteDeveloper",
    ("post", "/api/developers/bulk"): "importDevelopers",
    ("post", "/api/developers/bulk.ndjson"): "importDevelopersNdjson",
    ("post", "/api/developers/bulk.csv"): "importDevelopersCsv",
    ("post", "/api/developers/bulk-delete"): "deleteDevelopers",
    ("get", "/api/developers/export"): "exportDevelopers",
    ("get", "/api/developers/events"): "followDeveloperEvents",
    ("post", "/api/developers/events/tickets"): "issueEventTicket",
    ("post", "/api/developers/imports"): "submitImport",
    ("post", "/api/developers/imports.ndjson"): "submitImportNdjson",
    ("post", "/api/developers/imports.csv"): "submitImportCsv",
    ("get", "/api/imports"): "listImports",
    ("get", "/api/imports/{job_id}"): "getImport",
    ("delete", "/api/imports/{job_id}"): "cancelImport",
    ("post", "/api/access/token"): "signIn",
    ("get", "/api/users/me"): "getMe",
    ("get", "/api/users"): "listAccounts",
    ("post", "/api/users"): "createAccount",
    ("patch", "/api/users/{account_id}"): "updateAccount",
    ("delete", "/api/users/{account_id}"): "deleteAccount",
    ("get", "/health"): "checkHealth",
    ("get", "/ready"): "checkReadiness",
}
PUBLIC = {"signIn", "checkHealth", "checkReadiness"}
SCOPE = {  # the scope each protected operation's guard checks; none: any token
    "listDevelopers": "developers:read",
    "getDeveloper": "developers:read",
    "exportDevelopers": "developers:read",
    "followDeveloperEvents": "developers:read",
    "issueEventTicket": "developers:read",
    "listImports": "developers:read",
    "getImport": "developers:read",
    "createDeveloper": "developers:write",
    "updateDevelopers": "developers:write",
    "updateDeveloper": "developers:write",
    "deleteDeveloper": "developers:write",
    "importDevelopers": "developers:write",
    "importDevelopersNdjson": "developers:write",
    "importDevelopersCsv": "developers:write",
    "deleteDevelopers": "developers:write",
    "submitImport": "developers:write",
    "submitImportNdjson": "developers:write",
    "submitImportCsv": "developers:write",
    "cancelImport": "developers:write",
    "listAccounts": "users:admin",
    "createAccount": "users:admin",
    "updateAccount": "users:admin",
    "deleteAccount": "users:admin",
    "getMe": None,
}


async def test_operations_are_named_as_methods(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    operations = {(m, p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    assert {key: op["operationId"] for key, op in operations.items()} == OPERATION_IDS
    tags = {op["operationId"]: op["tags"] for op in operations.values()}
    domains = {"getMe": "users", "signIn": "access", "submitImportCsv": "imports", "checkHealth": "system"}
    for name, tag in (domains | {"listDevelopers": "developers", "listImports": "imports"}).items():
        assert tags[name] == [tag], name


async def test_each_operation_states_the_token_it_needs(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    (scheme,) = doc["components"]["securitySchemes"]
    for op in (op for ops in doc["paths"].values() for op in ops.values()):
        name = op["operationId"]
        if name in PUBLIC:
            assert op["security"] == [], name  # no token: not even an optional one
        else:
            scope = SCOPE[name]
            assert op["security"] == [{scheme: [] if scope is None else [scope]}], name
    assert set(PUBLIC) | set(SCOPE) == set(OPERATION_IDS.values())


async def test_answers_list_their_headers_in_name_order(client: httpx.AsyncClient) -> None:
    """The same document from every process: Litestar gathers a route's response headers in a frozenset, whose order
    follows the strings' hashes, which change from one process to the next (service.web.routes)."""
    doc = (await client.get("/schema/openapi.json")).json()
    token = doc["paths"]["/api/access/token"]["post"]["responses"]["200"]["headers"]
    assert list(token) == ["Cache-Control", "Pragma"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                headers = list(response.get("headers", {}))
                assert headers == sorted(headers), (method, path, status)


async def test_choices_are_named_once(client: httpx.AsyncClient) -> None:
    """Each set of choices is one component, referred to wherever it is taken: a generated client has one enum for
    it (OnConflict), not one per parameter and field (ImportDevelopersCsvOnConflict, ImportJobOnConflict, ...)."""
    doc = (await client.get("/schema/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    choices = {
        "OnConflict": ["error", "skip", "update"],
        "ImportStatus": ["queued", "running", "succeeded", "failed", "cancelled"],
        "Role": ["viewer", "editor", "admin"],
    }
    for name, values in choices.items():
        assert schemas[name] == {"type": "string", "enum": values, "title": name}
    text = json.dumps(doc)
    for values in choices.values():  # the component's list, and no inline copy anywhere
        assert text.count(json.dumps(values)) == 1, values
    refs = Counter(re.findall(r'"#/components/schemas/(OnConflict|ImportStatus|Role)"', text))
    # on_conflict: 6 import routes, ImportJob and ImportJobSummary (the change feed's); status: both; role: 3 bodies
    assert refs == {"OnConflict": 8, "ImportStatus": 2, "Role": 3}


async def test_schema_ui_is_served(client: httpx.AsyncClient) -> None:
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]


# The routes that stream an upload, and the one media type each documents.
STREAMED_UPLOADS = {
    "/api/developers/bulk": "application/json",
    "/api/developers/bulk.ndjson": "application/x-ndjson",
    "/api/developers/bulk.csv": "text/csv",
    "/api/developers/imports": "application/json",
    "/api/developers/imports.ndjson": "application/x-ndjson",
    "/api/developers/imports.csv": "text/csv",
}
BULK_ROUTES = {
    ("post", "/api/developers/bulk"): {"201", "408", "409", "413", "415"} | API,
    ("post", "/api/developers/bulk.ndjson"): {"201", "408", "409", "413", "415"} | API,
    ("post", "/api/developers/bulk.csv"): {"201", "408", "409", "413", "415"} | API,
    ("patch", "/api/developers"): {"200", "404", "409", "412", "413"} | API | JSON_BODY,
    ("post", "/api/developers/bulk-delete"): {"200", "413"} | API | JSON_BODY,
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

    paths = doc["paths"]
    imports = paths["/api/developers/bulk"]["post"]
    # The routes that stream an upload say why they may answer 408 and 503 besides the usual reasons.
    for path in STREAMED_UPLOADS:
        streamed = paths[path]["post"]
        assert "BODY_MIN_BYTES_PER_SECOND" in streamed["responses"]["408"]["description"], path
        assert "BULK_MAX_CONCURRENT" in streamed["responses"]["503"]["description"], path
        assert streamed["requestBody"]["required"] is True, path
        # One media type an operation: a generated client gets a working method for each format.
        assert list(streamed["requestBody"]["content"]) == [STREAMED_UPLOADS[path]], path
    content = imports["requestBody"]["content"]
    assert content["application/json"]["schema"]["type"] == "array"
    row = resolve(content["application/json"]["schema"]["items"])
    assert set(row["required"]) == {"name", "email", "specialty"}
    # The multi-format routes say in words that they take the other two formats as well.
    for path in ("/api/developers/bulk", "/api/developers/imports"):
        assert f"{path}.ndjson" in paths[path]["post"]["description"], path
        refused = paths[path]["post"]["responses"]["415"]["description"]
        assert all(media in refused for media in ("application/json", "application/x-ndjson", "text/csv")), path
    # NDJSON and CSV are streams of bytes, whose rows the description and the example show.
    for path, media_type in (("/bulk.ndjson", "application/x-ndjson"), ("/bulk.csv", "text/csv")):
        assert_binary_rows(paths[f"/api/developers{path}"]["post"]["requestBody"]["content"][media_type])
    assert (
        "header row"
        in paths["/api/developers/bulk.csv"]["post"]["requestBody"]["content"]["text/csv"]["schema"]["description"]
    )
    assert "is 400" in imports["requestBody"]["description"]
    for path in ("/api/developers/imports.ndjson", "/api/developers/imports.csv"):  # stored as sent, read later
        (media,) = paths[path]["post"]["requestBody"]["content"].values()
        assert media["schema"] == {"type": "string", "format": "binary"}, path
    (on_conflict,) = [p for p in imports["parameters"] if p["name"] == "on_conflict"]
    assert on_conflict["in"] == "query"
    assert on_conflict["schema"]["allOf"] == [{"$ref": "#/components/schemas/OnConflict"}]
    assert on_conflict["schema"]["default"] == "error"
    assert schemas["OnConflict"]["enum"] == ["error", "skip", "update"]

    batch = doc["paths"]["/api/developers"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["type"] == "array"
    item = resolve(batch["items"])
    assert set(item["properties"]) == {"id", "name", "email", "specialty", "if_match"}
    # An item changes at least one field: `if_match` alone is no change (400).
    (one_of,) = item["allOf"]
    assert [branch["required"] for branch in one_of["anyOf"]] == [["name"], ["email"], ["specialty"]]
    for branch in one_of["anyOf"]:  # each an object with the field's own schema (typed, not `unknown`, in TS)
        (field,) = branch["required"]
        assert branch["type"] == "object"
        assert branch["properties"] == {field: item["properties"][field]}
    deletion = doc["paths"]["/api/developers/bulk-delete"]["post"]["requestBody"]["content"]["application/json"]
    assert resolve(deletion["schema"])["properties"]["ids"]["type"] == "array"


async def test_openapi_describes_the_validators_and_the_conditions(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    one, many = doc["paths"]["/api/developers/{developer_id}"], doc["paths"]["/api/developers"]
    for operation, success in ((one["get"], "200"), (many["get"], "200"), (one["patch"], "200"), (many["post"], "201")):
        assert operation["responses"][success]["headers"]["ETag"]["required"] is True
    for operation in (one["get"], many["get"]):
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers == {"If-None-Match", "Consistency-Token"}
        assert "content" not in operation["responses"]["304"]
    for operation in (one["patch"], one["delete"]):
        assert {p["name"] for p in operation["parameters"] if p["in"] == "header"} == {"If-Match"}
        assert "REQUIRE_IF_MATCH" in operation["responses"]["428"]["description"]


async def test_openapi_describes_the_consistency_token(client: httpx.AsyncClient) -> None:
    """Writes answer it, the reads that may run on a standby take it back (service.db.consistency)."""
    doc = (await client.get("/schema/openapi.json")).json()
    reads = [
        ("/api/developers", "get"),
        ("/api/developers/{developer_id}", "get"),
        ("/api/developers/export", "get"),
        ("/api/users/me", "get"),
        ("/api/users", "get"),
        ("/api/imports", "get"),
        ("/api/imports/{job_id}", "get"),
    ]
    for path, method in reads:
        (token,) = [p for p in doc["paths"][path][method]["parameters"] if p["name"] == "Consistency-Token"]
        assert (token["in"], token["required"]) == ("header", False), (path, method)
    writes = [
        (path, method, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in {"post", "patch", "delete"}
    ]
    assert len(writes) >= 10
    for path, method, operation in writes:
        success = next(status for status in operation["responses"] if status.startswith("2"))
        header = operation["responses"][success].get("headers", {}).get("Consistency-Token")
        if path in {"/api/access/token", "/api/developers/events/tickets"}:  # they write nothing
            assert header is None, (path, method)
        else:
            assert header is not None, (path, method)
            assert header["schema"]["type"] == "string", (path, method)


MAX_ID = 9223372036854775807  # PostgreSQL's bigint maximum


def bounds(node: Any) -> list[Any]:
    """Every numeric bound anywhere in a document."""
    if isinstance(node, list):
        return [b for item in node for b in bounds(item)]
    if not isinstance(node, dict):
        return []
    keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    return [node[k] for k in keys if k in node] + [b for value in node.values() for b in bounds(value)]


async def test_integer_bounds_are_exact(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    found = bounds(doc)
    assert found
    assert all(type(b) is int for b in found), found  # JSON 9.223372036854776e+18 would be 2**63, one too many
    schemas = doc["components"]["schemas"]
    for path, method in [
        ("/api/developers/{developer_id}", "get"),
        ("/api/developers/{developer_id}", "patch"),
        ("/api/developers/{developer_id}", "delete"),
        ("/api/users/{account_id}", "patch"),
        ("/api/users/{account_id}", "delete"),
    ]:
        (parameter,) = [p for p in doc["paths"][path][method]["parameters"] if p["in"] == "path"]
        assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (1, MAX_ID), (method, path)
    assert schemas["DeveloperBatchUpdate"]["properties"]["id"]["maximum"] == MAX_ID
    ids = schemas["BulkDelete"]["properties"]["ids"]["items"]
    assert (ids["type"], ids["minimum"], ids["maximum"]) == ("integer", 1, MAX_ID)


def struct_types() -> dict[str, type[msgspec.Struct]]:
    modules = [service.developers.schemas, service.accounts.schemas, service.web.problems, service.system.health]
    return {
        name: value
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == module.__name__
    }


async def test_bodies_that_refuse_unknown_fields_say_so(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    closed = {name for name, struct in struct_types().items() if struct.__struct_config__.forbid_unknown_fields}
    assert {"DeveloperCreate", "DeveloperUpdate", "DeveloperBatchUpdate", "BulkDelete"} <= closed
    assert {"AccountCreate", "AccountUpdate"} <= closed
    for name, schema in schemas.items():
        if name in closed:
            assert schema["additionalProperties"] is False, name
        else:
            assert "additionalProperties" not in schema, name
    assert closed <= set(schemas)


async def test_the_cursor_parameter_has_the_form_of_a_cursor(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    (cursor,) = [p for p in doc["paths"]["/api/developers"]["get"]["parameters"] if p["name"] == "cursor"]
    schema = cursor["schema"]
    assert (schema["pattern"], schema["maxLength"]) == (keyset.PATTERN, keyset.MAX_LENGTH)
    assert re.fullmatch(schema["pattern"], keyset.encode("Zoë Ñandú", MAX_ID))
    assert not re.fullmatch(schema["pattern"], "0")  # was schema-valid, and 400


async def test_each_cursor_and_batch_item_states_its_real_form(client: httpx.AsyncClient) -> None:
    """The forms the handlers check, stated in the document: what it allows is accepted (tests/system/test_fuzz.py
    checks the answers)."""
    doc = (await client.get("/schema/openapi.json")).json()
    events = {p["name"]: p["schema"] for p in doc["paths"]["/api/developers/events"]["get"]["parameters"]}
    for name in ("after", "Last-Event-ID"):
        assert (events[name]["pattern"], events[name]["maxLength"]) == (cursors.PATTERN, 39), name
        for value in ("0-0", "6266-6", f"{MAX_ID}-{MAX_ID}"):
            assert cursors.parse(value) == tuple(map(int, value.split("-")))
            assert jsonschema_rs.validator_for(events[name]).is_valid(value)
        for value in ("0" * 40, "0", "01-1", "1-1\n", f"{MAX_ID + 1}-1", "\u0661-1"):
            assert not jsonschema_rs.validator_for(events[name]).is_valid(value), (name, value)
    assert events["Last-Event-ID"]["type"] == "string"  # a header is never null
    imports = {p["name"]: p["schema"] for p in doc["paths"]["/api/imports"]["get"]["parameters"]}
    assert jsonschema_rs.validator_for(imports["cursor"]).is_valid(str(MAX_ID))
    for value in ("0", "01", str(MAX_ID + 1), "1\n"):
        assert not jsonschema_rs.validator_for(imports["cursor"]).is_valid(value), value
    batch_item = doc["components"]["schemas"]["DeveloperBatchUpdate"]
    assert batch_item["minProperties"] == 2  # the id and a field to change: [{"id": 1}] is 400
    assert not jsonschema_rs.validator_for(batch_item).is_valid({"id": 1})


async def test_the_event_stream_is_described_event_by_event(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    stream = doc["paths"]["/api/developers/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    change, resync = stream["schema"]["oneOf"]
    assert change["properties"]["event"]["const"] == "message"
    assert change["properties"]["data"]["contentSchema"]["$ref"] == "#/components/schemas/Event"
    assert change["properties"]["id"]["pattern"] == cursors.PATTERN
    assert resync["properties"]["event"]["const"] == "resync"


async def test_problem_schema_has_no_invented_examples(client: httpx.AsyncClient) -> None:
    problem = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]["Problem"]
    assert "examples" not in str(problem)


async def test_openapi_describes_the_export(client: httpx.AsyncClient) -> None:
    export = (await client.get("/schema/openapi.json")).json()["paths"]["/api/developers/export"]["get"]
    content = export["responses"]["200"]["content"]
    assert list(content) == ["text/csv", "application/x-ndjson"]
    for media_type in content:  # what the import takes
        assert_binary_rows(content[media_type])
    parameters = {p["name"]: p for p in export["parameters"]}
    assert set(parameters) == {"format", "specialty", "Consistency-Token"}
    assert (parameters["format"]["required"], parameters["format"]["schema"]["enum"]) == (True, ["csv", "ndjson"])
    assert parameters["specialty"]["schema"]["maxLength"] == 100
    assert "EXPORT_MAX_CONCURRENT" in export["responses"]["503"]["description"]


def assert_binary_rows(media: dict[str, Any]) -> None:
    """A stream of rows: a binary string, described, with an example of DeveloperCreate rows."""
    assert {key: media["schema"][key] for key in ("type", "format")} == {"type": "string", "format": "binary"}
    assert "DeveloperCreate" in media["schema"]["description"]
    assert "ada@example.com" in media["example"]


def examples_in(node: Any, schema: dict[str, Any] | None = None) -> list[tuple[dict[str, Any], Any]]:
    """Every (schema, example) pair of a document: each value listed in a schema's `examples`."""
    if isinstance(node, list):
        return [pair for item in node for pair in examples_in(item)]
    if not isinstance(node, dict):
        return []
    is_schema = any(key in node for key in ("type", "$ref", "oneOf", "anyOf"))
    found = [(node, example) for example in node.get("examples", [])] if is_schema else []
    return found + [pair for key, value in node.items() if key != "examples" for pair in examples_in(value)]


async def test_the_document_s_examples_look_like_what_the_api_sends(client: httpx.AsyncClient) -> None:
    """No invented examples (Litestar's were random: `"email": "psxSmwtEmkVBOmIxyHqA"`, timestamps without a
    zone): each example is valid for its schema, a timestamp has its zone, an email is one."""
    doc = (await client.get("/schema/openapi.json")).json()
    pairs = examples_in(doc)
    assert len(pairs) >= 25  # the main bodies have examples
    for schema, example in pairs:
        validator = jsonschema_rs.validator_for(schema | {"components": doc["components"]}, validate_formats=True)
        assert validator.is_valid(example), (schema, example)
        if "date-time" in {schema.get("format"), *(one.get("format") for one in schema.get("oneOf", []))}:
            assert datetime.fromisoformat(example).tzinfo is not None, example
        assert not (isinstance(example, str) and re.fullmatch(r"[A-Za-z]{20}", example)), example  # generated
    schemas = doc["components"]["schemas"]
    emails = [
        example for name in ("Developer", "Account") for example in schemas[name]["properties"]["email"]["examples"]
    ]
    assert emails
    assert all(re.search(EMAIL_PATTERN, email) for email in emails)
    for name in ("Developer", "ImportJob", "Account", "Event"):
        stamps = [p for p in schemas[name]["properties"].values() if "date-time" in str(p)]
        assert stamps, name
        assert all("examples" in str(stamp) for stamp in stamps), name
