"""Ids in request paths (`/api/developers/{developer_id}`): 1 to ID_MAX, written in ASCII digits, nothing else.

Litestar's `int` path type reads a segment with Python's int(), which also takes any Unicode digit and space
around it (`/api/developers/%D9%A1`, an Arabic-Indic one, and `/api/developers/1%20` named developer 1), and
msgspec's lenient conversion of a `str` segment takes `1e0` and `1.0`. So id segments are declared `str` and read
by this type's decoder, which takes the canonical form alone: any other segment is a 400 problem naming the
parameter, as an id out of range is. The API document shows the parameter as the integer it is, with its bounds
(service.web.openapi).
"""

from __future__ import annotations

from typing import Any

from service.core.validation import ID_MAX

_MAX_DIGITS = len(str(ID_MAX))
MESSAGE = f"Expected an id: an integer from 1 to {ID_MAX}, in ASCII digits without sign, space or leading zero"


class PathId(int):
    """An id read from a path segment (declare the segment `{name:str}` and the parameter with this type)."""


def _is_path_id(target: Any) -> bool:
    return target is PathId


def _decode(_: type[PathId], value: Any) -> PathId:
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_DIGITS
        and value.isascii()
        and value.isdigit()
        and value[0] != "0"
        and (number := int(value)) <= ID_MAX
    ):
        return PathId(number)
    raise ValueError(MESSAGE)


# For a controller's `type_decoders` (service.web.controller.Controller registers them for every route).
TYPE_DECODERS = [(_is_path_id, _decode)]
