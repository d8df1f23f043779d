"""The text and email patterns mean the same to msgspec (Python's `re`) and to a reader of the API document
(a JSON Schema validator, ECMA-262 regular expressions): the server accepts exactly what the document allows."""

from __future__ import annotations

import re
import unicodedata

import httpx
import jsonschema_rs
import pytest

from service.core.validation import EMAIL_PATTERN, TEXT_PATTERN
from tests.client import assert_problem

# Every character where the two dialects' `\s` could differ lies below U+3100, but for U+FEFF; then the format
# characters above U+FFFF (which the patterns write as themselves), with their neighbours.
ASTRAL = [0x110BC, 0x110BD, 0x110CD, 0x13430, 0x1343F, 0x1BCA3, 0x1D173, 0x1D17A, 0x1F9D1, 0xE0001, 0xE0020, 0xE007F]
CHARACTERS = [
    chr(code) for code in [*range(0x3100), 0xFEFF, *ASTRAL, 0xE0080, 0x10FFFF] if not 0xD800 <= code <= 0xDFFF
]


@pytest.mark.parametrize(
    ("pattern", "around"),
    [
        (TEXT_PATTERN, "{}"),
        (TEXT_PATTERN, "a{}"),
        (EMAIL_PATTERN, "{}@b.c"),
        (EMAIL_PATTERN, "a@b.c{}"),
        (EMAIL_PATTERN, "a{}b@c.d"),
    ],
)
def test_python_and_json_schema_agree_on_every_character(pattern: str, around: str) -> None:
    document = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    disagree = [
        f"U+{ord(c):04X}"
        for c in CHARACTERS
        if document.is_valid(value := around.format(c)) != bool(re.search(pattern, value))
    ]
    assert not disagree


async def test_an_email_with_a_trailing_newline_is_400(client: httpx.AsyncClient) -> None:
    # Python's `$` matched before a final newline, so this email was stored, newline and all.
    body = {"name": "Ada", "email": "ada@example.com\n", "specialty": "math"}
    assert "email" in str(assert_problem(await client.post("/api/developers", json=body), 400)["extra"])


@pytest.mark.parametrize("space", ["\x1c", "\x1f", "\x85"])  # whitespace to Python, not to ECMA-262's `\s`
async def test_the_document_rejects_the_whitespace_names_the_server_rejects(
    client: httpx.AsyncClient, space: str
) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    name = doc["components"]["schemas"]["DeveloperCreate"]["properties"]["name"]
    assert not jsonschema_rs.validator_for(name).is_valid(space * 3)
    body = {"name": space * 3, "email": "ada@example.com", "specialty": "math"}
    assert_problem(await client.post("/api/developers", json=body), 400)


def test_an_email_holds_no_format_character_of_any_kind() -> None:
    """Every character of Unicode category Cf that this Python knows is refused in an email (the pattern lists them
    by hand: a newer Unicode's new ones make this fail until they are added)."""
    email = re.compile(EMAIL_PATTERN)
    format_characters = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
    assert len(format_characters) > 150
    assert [f"U+{ord(c):04X}" for c in format_characters if email.search(f"a{c}b@c.d")] == []
    assert email.search("zo\u00eb\u200a@x.io") is None  # a space still is one
    assert email.search("zo\u00eb@\u00e9x.io") is not None
