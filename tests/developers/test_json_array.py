"""The streaming JSON array splitter: any way the body is cut into reads, the items are those of one whole
decode, and invalid JSON is refused as a whole decode would refuse it."""

from __future__ import annotations

import itertools
import random

import msgspec
import pytest

from service.core.errors import InvalidInput
from service.developers.bulk.json_array import MAX_ITEM, ArraySplitter

ITEMS = [
    {"name": "Plain", "email": "a@x.io", "specialty": "s"},
    {"name": "Braces } and }} in a string", "email": "b@x.io", "specialty": "{}"},
    {"name": 'Quote \\" } escaped', "email": "c@x.io", "specialty": "s"},
    {"name": {"nested": {"object": [1, {"deep": "}"}]}}, "email": "d@x.io", "specialty": "s"},
    {"name": "Ünïcödé ✓ }", "email": "e@x.io", "specialty": "s"},
    [1, 2, {"x": "}"}],
    None,
    {"name": "}" * 20, "email": "f@x.io", "specialty": "}" * 20},
]
BODY = b"  \n[ " + b" ,\n ".join(msgspec.json.encode(item) for item in ITEMS) + b"\r\n]\n"


def split(body: bytes, cuts: list[int]) -> list[object]:
    splitter = ArraySplitter()
    items: list[msgspec.Raw] = []
    bounds = [0, *sorted(cuts), len(body)]
    for start, end in itertools.pairwise(bounds):
        items.extend(splitter.feed(body[start:end]))
    items.extend(splitter.end())
    return [msgspec.json.decode(item) for item in items]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 64, len(BODY)])
def test_any_read_size_gives_the_items_of_a_whole_decode(size: int) -> None:
    assert split(BODY, list(range(size, len(BODY), size))) == msgspec.json.decode(BODY)


def test_random_cuts_give_the_items_of_a_whole_decode() -> None:
    rng = random.Random(9457)
    for _ in range(200):
        cuts = rng.sample(range(1, len(BODY)), rng.randint(1, 12))
        assert split(BODY, cuts) == msgspec.json.decode(BODY)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a": 1} {"b": 2}]',  # no comma between items
        b'[{"a": 1},, {"b": 2}]',  # two commas
        b'[{"a": 1}, {"b": 2},]',  # trailing comma
        b'[{"a": 1}, {"b": 2}] x',  # something after the array
        b'[{"a": 1}, {"b": 2}',  # never closed
        b'{"a": 1}',  # not an array
        b"",
        b"   ",
        b'[{"a": 1}, {"b": tru}]',
        b"[" + b"[" * 5000 + b"]" * 5000 + b"]",  # nested too deeply for a decoder
    ],
)
@pytest.mark.parametrize("size", [1, 5, 1 << 20])
def test_invalid_json_is_refused_however_it_is_cut(body: bytes, size: int) -> None:
    with pytest.raises(InvalidInput):
        split(body, list(range(size, len(body), size)))


def test_an_item_longer_than_the_limit_is_refused_without_buffering_the_body() -> None:
    splitter = ArraySplitter()
    list(splitter.feed(b'[{"a": 1}, {"name": "'))
    list(splitter.feed(b"x" * MAX_ITEM))  # still within the limit
    with pytest.raises(InvalidInput, match="longer than"):
        list(splitter.feed(b"x" * MAX_ITEM))
    assert len(splitter.pending) < 3 * MAX_ITEM


def test_memory_holds_only_what_follows_the_last_complete_item() -> None:
    splitter = ArraySplitter()
    item = msgspec.json.encode(ITEMS[1])
    total = 0
    total += len(list(splitter.feed(b"[" + item)))
    for _ in range(2000):
        total += len(list(splitter.feed(b"," + item)))
        assert len(splitter.pending) <= 2 * len(item)
    total += len(list(splitter.feed(b"]")))
    total += len(list(splitter.end()))
    assert total == 2001
