"""JSON decoding with every fault of the data one error: `msgspec.DecodeError`.

msgspec reports two faults of a body with errors other than `msgspec.DecodeError`: invalid UTF-8 inside a string
raises UnicodeDecodeError, and arrays or objects nested near Python's recursion limit (a 2 KB body of brackets)
raise RecursionError. Both are the client's mistake, so they are caught right around the decoding of client data,
where nothing else can raise them; anywhere else a RecursionError is a bug of ours and stays one. The request
bodies (service.web.json_body) and the bulk parsers decode through here.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

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
