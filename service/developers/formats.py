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
_DOCUMENTED = {
    "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=_ROW)),
    "application/x-ndjson": OpenAPIMediaType(
        schema=_ROW, example='{"name":"Ada Lovelace","email":"ada@example.com","specialty":"compilers"}'
    ),
    "text/csv": OpenAPIMediaType(
        # Described by its rows, as NDJSON is by its lines: what a row must hold is DeveloperCreate's rules.
        schema=Schema(type=OpenAPIType.ARRAY, items=_ROW, description=CSV_ROWS),
        example=f"{','.join(CSV_HEADER)}\nAda Lovelace,ada@example.com,compilers\n",
    ),
}


def documented(*media_types: str) -> dict[str, OpenAPIMediaType]:
    """The API document's content entries of these formats, in this order."""
    return {media_type: _DOCUMENTED[media_type] for media_type in media_types}
