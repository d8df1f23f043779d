"""The row formats developers travel in, as the API document shows them: what an import takes (a JSON array,
NDJSON, CSV) and an export gives back (NDJSON, CSV), each a DeveloperCreate per row, with one example each.

NDJSON and CSV are streams of bytes, read and written as they travel, so the document calls them binary strings
(what a client generator passes through as a file or bytes) and says in words what their rows hold.
"""

from __future__ import annotations

from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Reference, Schema

from service.developers.schemas import CSV_HEADER

JSON, NDJSON, CSV = "application/json", "application/x-ndjson", "text/csv"
FORMAT_NAMES = {
    JSON: "a JSON array of DeveloperCreate",
    NDJSON: "NDJSON (a DeveloperCreate a line)",
    CSV: "CSV (a header row, then a DeveloperCreate a row)",
}
NDJSON_ROWS = "NDJSON in UTF-8: one JSON object a line, each a DeveloperCreate."
CSV_ROWS = (
    "RFC 4180 CSV in UTF-8: a header row naming name, email and specialty (in any order and case), then one "
    "developer a row, each field as DeveloperCreate has it."
)
_ROW = Reference(ref="#/components/schemas/DeveloperCreate")
_NDJSON_EXAMPLE = '{"name":"Ada Lovelace","email":"ada@example.com","specialty":"compilers"}\n'
_CSV_EXAMPLE = f"{','.join(CSV_HEADER)}\nAda Lovelace,ada@example.com,compilers\n"
_DOCUMENTED = {
    JSON: OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=_ROW)),
    NDJSON: OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description=NDJSON_ROWS),
        example=_NDJSON_EXAMPLE,
    ),
    CSV: OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description=CSV_ROWS),
        example=_CSV_EXAMPLE,
    ),
}


def documented(*media_types: str) -> dict[str, OpenAPIMediaType]:
    """The API document's content entries of these formats, in this order, for a request body or an answer."""
    return {media_type: _DOCUMENTED[media_type] for media_type in media_types}
