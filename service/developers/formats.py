"""The row formats developers travel in, as the API document shows them: what an import takes (a JSON array,
NDJSON, CSV) and an export gives back (NDJSON, CSV), each a DeveloperCreate per row, with one example each."""

from __future__ import annotations

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Reference, Schema

from service.developers.schemas import CSV_HEADER

CSV_ROWS = (
    "RFC 4180 CSV in UTF-8: a header row naming name, email and specialty (in any order and case), then one "
    "developer a row, each field as DeveloperCreate has it. A body that is not such rows is 400, naming the row."
)
_ROW = Reference(ref="#/components/schemas/DeveloperCreate")
_CSV_EXAMPLE = f"{','.join(CSV_HEADER)}\nAda Lovelace,ada@example.com,compilers\n"
_DOCUMENTED = {
    "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=_ROW)),
    "application/x-ndjson": OpenAPIMediaType(
        schema=_ROW, example='{"name":"Ada Lovelace","email":"ada@example.com","specialty":"compilers"}'
    ),
    "text/csv": OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, description="A header row, then one developer a row."),
        example=_CSV_EXAMPLE,
    ),
}
# A CSV body is described by its rows, as NDJSON is by its lines: what a row must hold is DeveloperCreate's rules,
# so a client (or a fuzzer) that follows the document sends rows the import takes.
_CSV_BODY = OpenAPIMediaType(
    schema=Schema(type=OpenAPIType.ARRAY, items=_ROW, description=CSV_ROWS), example=_CSV_EXAMPLE
)


def documented(*media_types: str, body: bool = False) -> dict[str, OpenAPIMediaType]:
    """The API document's content entries of these formats, in this order: of a request `body`, or an answer."""
    entries = {media_type: _DOCUMENTED[media_type] for media_type in media_types}
    if body and "text/csv" in entries:
        entries["text/csv"] = _CSV_BODY
    return entries
