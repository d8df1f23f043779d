"""The row formats developers travel in, as the API document shows them: what an import takes (a JSON array,
NDJSON, CSV) and an export gives back (NDJSON, CSV), each a DeveloperCreate per row, with one example each."""

from __future__ import annotations

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Reference, Schema

from service.developers.schemas import CSV_HEADER

_ROW = Reference(ref="#/components/schemas/DeveloperCreate")
_DOCUMENTED = {
    "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=_ROW)),
    "application/x-ndjson": OpenAPIMediaType(
        schema=_ROW, example='{"name":"Ada Lovelace","email":"ada@example.com","specialty":"compilers"}'
    ),
    "text/csv": OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, description="A header row, then one developer a row."),
        example=f"{','.join(CSV_HEADER)}\nAda Lovelace,ada@example.com,compilers\n",
    ),
}


def documented(*media_types: str) -> dict[str, OpenAPIMediaType]:
    """The API document's content entries of these formats, in this order."""
    return {media_type: _DOCUMENTED[media_type] for media_type in media_types}
