"""A JSON array of objects split into its items as the body arrives, so a 1M-row import never holds the body.

msgspec has no incremental parser, but it splits a complete array into raw items (`list[msgspec.Raw]`) at C
speed without decoding them. So the splitter cuts the bytes received so far after the last `}`, decodes that
piece as an array, and keeps the rest for the next read. A `}` can also sit inside a string or a nested value;
then that piece is no complete array, and the splitter tries the `}` before it, a few times, then waits for
more data. msgspec stays the judge of what is valid JSON: each piece after the first is decoded behind a `null`
placeholder (`[null, {...}, {...}]`), so a missing or doubled comma between two pieces is an error as it would
be in one whole decode.

Memory holds one network read and what follows the last complete item: an item is at most MAX_ITEM bytes (64
KiB, as an NDJSON line); a longer stretch without a complete item is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from service.core.decoding import MALFORMED, decode
from service.core.errors import InvalidInput

MAX_ITEM = 64 * 1024
_CUT_TRIES = 8  # `}` tried from the end of the data before waiting for more
_WHITESPACE = b" \t\r\n"
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_BYTE = re.compile(r"\(byte (\d+)\)")


class ArraySplitter:
    def __init__(self) -> None:
        self.pending = b""  # received, not yet returned as items
        self.offset = 0  # where `pending` starts in the body, for error messages
        self.opened = False  # the `[` has been seen
        self.items = 0  # items returned so far

    def feed(self, data: bytes) -> Iterator[msgspec.Raw]:
        """The complete items that `data` (the next bytes of the body) brings."""
        stuck = len(self.pending) > MAX_ITEM  # what is left from earlier reads holds no complete item
        self.pending += data
        if not self.opened and not self._open():
            return
        if stuck:
            yield from self._one_by_one()
            return
        end = len(self.pending)
        for _ in range(_CUT_TRIES):
            end = self.pending.rfind(b"}", 0, end)
            if end == -1:
                return
            items = self._decode(self.pending[: end + 1] + b"]", final=False)
            if items is not None:
                yield from self._taken(items, end + 1)
                return

    def _one_by_one(self) -> Iterator[msgspec.Raw]:
        """Items cut from the front, one at a time (each `}` in turn): the slow way, for when the fast cuts from
        the end failed for more than MAX_ITEM bytes; it finds where the items stop being valid."""
        end = 0
        while (end := self.pending.find(b"}", end)) != -1 and end < MAX_ITEM:
            items = self._decode(self.pending[: end + 1] + b"]", final=False)
            if items is None:
                end += 1
                continue
            yield from self._taken(items, end + 1)
            end = 0
        if len(self.pending) > MAX_ITEM:
            try:
                self._decode(self.pending + b"]", final=True)  # names the JSON error, if that is what it is
            except InvalidInput as exc:
                if "truncated" not in str(exc.detail):
                    raise
            raise _invalid(f"item {self.items + 1} is longer than {MAX_ITEM} bytes")

    def end(self) -> Iterator[msgspec.Raw]:
        """The items left once the body has ended, which must close the array."""
        if not self.opened and not self._open(final=True):
            raise _invalid("the body is empty; send a JSON array of developers")
        items = self._decode(self.pending, final=True)
        assert items is not None  # a final decode raises instead
        yield from self._taken(items, len(self.pending))

    def _open(self, *, final: bool = False) -> bool:
        start = len(self.pending) - len(self.pending.lstrip(_WHITESPACE))
        if start == len(self.pending):
            return False
        if self.pending[start : start + 1] != b"[":
            if final or len(self.pending) - start > MAX_ITEM:
                raise _invalid("the body must be a JSON array of developers")
            return False
        self.offset += start + 1
        self.pending = self.pending[start + 1 :]
        self.opened = True
        return True

    def _decode(self, piece: bytes, *, final: bool) -> list[msgspec.Raw] | None:
        placeholder = b"[null" if self.items else b"["
        try:
            items = decode(_ITEMS, placeholder + piece)
        except msgspec.DecodeError as exc:
            if not final:
                return None  # cut inside a string or a nested value: try another cut, or wait for more
            start = self.offset - len(placeholder)
            message = _BYTE.sub(lambda m: f"(byte {int(m[1]) + start})", str(exc))
            raise _invalid(f"{MALFORMED} after item {self.items}: {message}") from exc
        return items[1:] if self.items else items

    def _taken(self, items: list[msgspec.Raw], used: int) -> Iterator[msgspec.Raw]:
        self.pending = self.pending[used:]
        self.offset += used
        self.items += len(items)
        yield from items


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(f"{detail}; nothing was written")
