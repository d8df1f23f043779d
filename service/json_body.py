"""What the service takes as a JSON body: UTF-8 JSON that nests no deeper than the decoder's stack allows.

msgspec reports two faults of a body with errors other than `msgspec.DecodeError`: invalid UTF-8 inside a string
raises UnicodeDecodeError, and arrays or objects nested near Python's recursion limit (a 2 KB body of brackets)
raise RecursionError. Both are the client's mistake, so they are caught right around the decoding of a body,
where nothing else can raise them, and answered 400 like any malformed JSON. Anywhere else a RecursionError is
a bug of ours and stays a 500.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException

T = TypeVar("T")

MALFORMED = "the body is not valid UTF-8 JSON"
NOT_UTF8 = "a string holds bytes that are not UTF-8"
TOO_DEEP = "arrays or objects nest too deeply"


def decode(decoder: msgspec.json.Decoder[T], data: bytes) -> T:
    """`decoder.decode(data)`, with every fault of the data a `msgspec.DecodeError`."""
    try:
        return decoder.decode(data)
    except UnicodeDecodeError as exc:
        raise msgspec.DecodeError(NOT_UTF8) from exc
    except RecursionError as exc:
        raise msgspec.DecodeError(TOO_DEEP) from exc


class JSONBodyRequest(Request[Any, Any, Any]):
    """The request class of every route: Litestar's, with its JSON decoding held to the rules above."""

    async def json(self) -> Any:
        await self.body()  # read first, so that the `try` below holds nothing but the decoding
        try:
            return await super().json()
        # Litestar answers a SerializationException 400, with its message as the detail.
        except UnicodeDecodeError as exc:
            raise SerializationException(f"{MALFORMED}: {NOT_UTF8}") from exc
        except RecursionError as exc:
            raise SerializationException(f"{MALFORMED}: {TOO_DEEP}") from exc
