"""The import parsers: a body (JSON array, NDJSON, CSV) turned into chunks of validated rows as its bytes arrive.

Every format is parsed from the request stream piece by piece, so memory holds one network chunk, one partial
line (or JSON item) and one chunk of rows, whatever the body's size. A JSON array is split into its items as it
arrives (json_array.py).

Every row is validated by the same msgspec Struct as the single-row route. Any error is an InvalidRows (400)
that names the row (1-based, in the order the client sent the rows) and the field; rows are counted as records,
so row 50,001 is the 50,001st developer in every format, and NDJSON and CSV errors also give the line.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable

import msgspec

from service.core.decoding import decode
from service.core.validation import named_field, readable
from service.developers.bulk.json_array import MAX_ITEM, ArraySplitter
from service.developers.bulk.rows import Row
from service.developers.errors import InvalidRows, TooManyRows
from service.developers.schemas import CSV_HEADER, DeveloperCreate

CHUNK_ROWS = 10_000  # rows per COPY: large enough to amortise the round trip, small enough to keep memory flat
FIRST_CHUNK_ROWS = 1_000  # the first COPY starts early, so PostgreSQL's work overlaps the parsing of the rest
MAX_LINE = MAX_ITEM  # no valid record comes near this; a longer line (or JSON item) is refused instead of buffered
_YIELD_EVERY = 250  # rows parsed between two turns of the event loop, for the chunk writer's task

_ONE = msgspec.json.Decoder(DeveloperCreate)
# msgspec's messages end with the path of the error: "Expected `str` of length <= 254 - at `$[41].email`".
_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?:\[(?P<index>\d+)\])?(?:\.(?P<field>\w+))?`)?$", re.DOTALL)


def parse(media_type: str, body: AsyncIterable[bytes], max_rows: int) -> AsyncIterator[list[Row]]:
    """`body`, a document of `media_type` (one of MEDIA_TYPES, UTF-8), as chunks of rows; TooManyRows past
    `max_rows`."""
    return _PARSERS[media_type](aiter(body), max_rows)


async def _json_rows(body: AsyncIterator[bytes], max_rows: int) -> AsyncIterator[list[Row]]:
    splitter = ArraySplitter()
    rows: list[Row] = []
    limit = FIRST_CHUNK_ROWS
    row_no = 0
    async for data in body:
        for item in splitter.feed(data):
            row_no += 1
            if row_no > max_rows:
                raise TooManyRows(max_rows)
            rows.append(_decode(item, row_no))
            if row_no % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the chunk writer's task move on
        if len(rows) >= limit:
            yield rows
            rows, limit = [], CHUNK_ROWS
    for item in splitter.end():
        row_no += 1
        if row_no > max_rows:
            raise TooManyRows(max_rows)
        rows.append(_decode(item, row_no))
    yield rows


async def _ndjson_rows(body: AsyncIterator[bytes], max_rows: int) -> AsyncIterator[list[Row]]:
    rows: list[Row] = []
    limit = FIRST_CHUNK_ROWS
    row_no = line_no = 0
    pending = b""  # the start of a line whose end has not arrived yet
    async for data in body:
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        if len(pending) > MAX_LINE:
            raise invalid_row(row_no + 1, f"line longer than {MAX_LINE} bytes", line=line_no + 1)
        for line in lines:
            line_no += 1
            if line and not line.isspace():  # blank lines hold no row
                row_no += 1
                if row_no > max_rows:
                    raise TooManyRows(max_rows)
                rows.append(_decode(line, row_no, line_no))
                if row_no % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the chunk writer's task move on, however the body arrives
        if len(rows) >= limit:
            yield rows
            rows, limit = [], CHUNK_ROWS
    if pending and not pending.isspace():
        row_no += 1
        if row_no > max_rows:
            raise TooManyRows(max_rows)
        rows.append(_decode(pending, row_no, line_no + 1))
    yield rows


def _decode(item: bytes, row_no: int, line_no: int | None = None) -> Row:
    try:
        developer = decode(_ONE, item)
    except msgspec.ValidationError as exc:
        message, _, field = _split(str(exc))
        raise invalid_row(row_no, message, field, line=line_no) from exc
    except msgspec.DecodeError as exc:
        raise invalid_row(row_no, f"not valid UTF-8 JSON: {exc}", line=line_no) from exc
    return (row_no, developer.name, developer.email, developer.specialty)


async def _csv_rows(body: AsyncIterator[bytes], max_rows: int) -> AsyncIterator[list[Row]]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    parser = _CsvParser(max_rows)
    rows: list[Row] = []
    limit = FIRST_CHUNK_ROWS
    pending = ""  # the start of a record whose end has not arrived yet
    async for data in body:
        text = pending + parser.decode(decoder, data)
        end = _records_end(text)
        pending = text[end:]
        if len(pending) > MAX_LINE:
            raise invalid_row(parser.row_no + 1, f"record longer than {MAX_LINE} characters", line=parser.lines + 1)
        parser.parse(text[:end], rows)
        await asyncio.sleep(0)  # let the chunk writer's task move on
        if len(rows) >= limit:
            yield rows
            rows, limit = [], CHUNK_ROWS
    parser.parse(pending + parser.decode(decoder, b"", final=True), rows)
    yield rows


def _records_end(text: str) -> int:
    """Where the last complete CSV record of `text` ends: after its last newline outside quotes (0 if none).

    Quotes toggle "inside a field" (an escaped quote is two, so toggles twice): a newline ends a record when
    an even number of quotes precede it.
    """
    quotes = text.count('"')
    end = len(text)
    while (newline := text.rfind("\n", 0, end)) != -1:
        quotes -= text.count('"', newline, end)
        if quotes % 2 == 0:
            return newline + 1
        end = newline
    return 0


class _CsvParser:
    """Turns complete CSV records into rows; the first record is the header, in any column order."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.row_no = 0  # data rows so far
        self.lines = 0  # physical lines so far, for error messages
        self.order: tuple[int, ...] | None = None  # where name, email and specialty are in a record

    def decode(self, decoder: codecs.IncrementalDecoder, data: bytes, *, final: bool = False) -> str:
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise invalid_row(self.row_no + 1, "the body is not UTF-8 text", line=self.lines + 1) from exc
        return text.removeprefix("\ufeff") if self.order is None and self.lines == 0 else text

    def parse(self, block: str, rows: list[Row]) -> None:
        reader = csv.reader(io.StringIO(block, newline=""), strict=True)
        try:
            for record in reader:
                if not record:
                    continue  # a blank line
                if self.order is None:
                    self.order = _header(record, self.lines + reader.line_num)
                else:
                    self.row_no += 1
                    rows.append(self._row(record, self.lines + reader.line_num))
        except csv.Error as exc:
            raise invalid_row(self.row_no + 1, f"malformed CSV: {exc}", line=self.lines + reader.line_num) from exc
        self.lines += reader.line_num

    def _row(self, record: list[str], line: int) -> Row:
        if self.row_no > self.max_rows:
            raise TooManyRows(self.max_rows)
        if len(record) != len(CSV_HEADER):
            raise invalid_row(self.row_no, f"expected 3 fields (name, email, specialty), got {len(record)}", line=line)
        assert self.order is not None
        fields = {name: record[index] for name, index in zip(CSV_HEADER, self.order, strict=True)}
        try:
            item = msgspec.convert(fields, DeveloperCreate)
        except msgspec.ValidationError as exc:
            message, _, field = _split(str(exc))
            raise invalid_row(self.row_no, message, field, line=line) from exc
        return (self.row_no, item.name, item.email, item.specialty)


def _header(record: list[str], line: int) -> tuple[int, ...]:
    names = [name.strip().lower() for name in record]
    if sorted(names) != sorted(CSV_HEADER):
        raise InvalidRows(
            f"line {line}: the first line must be the header name,email,specialty (any order), not {record}"
        )
    return tuple(names.index(name) for name in CSV_HEADER)


def _split(error: str) -> tuple[str, str | None, str | None]:
    match = _PATH.match(error)
    assert match is not None  # the pattern matches any string
    message, index, field = match["message"], match["index"], match["field"]
    if field is None:
        field = named_field(message)
    return message, index, field


def invalid_row(row: int, message: str, field: str | None = None, *, line: int | None = None) -> InvalidRows:
    return InvalidRows.one(row, readable(message), field, line=line)


_PARSERS: dict[str, Callable[[AsyncIterator[bytes], int], AsyncIterator[list[Row]]]] = {
    "application/json": _json_rows,
    "application/x-ndjson": _ndjson_rows,
    "text/csv": _csv_rows,
}
MEDIA_TYPES = tuple(_PARSERS)
