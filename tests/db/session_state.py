"""What a connection must never send to a transaction-mode pooler: anything that outlives its transaction on the
server connection (a session-level setting, a LISTEN, a session advisory lock, a prepared statement the next
client inherits, a WITH HOLD cursor, a temp table kept after COMMIT), and extended-protocol exchanges that straddle
a ReadyForQuery 'I', where the pooler may hand the server connection to another client. (asyncpg's unnamed
statement outside a transaction, Parse/Describe/Flush then Parse/Bind/Execute/Sync, straddles none: PgBouncer
keeps the server connection until the ReadyForQuery that ends it.)

`violations(sessions)` judges connections recorded by tests/pgwire.py; each violation says why. Strict mode (the
default, DB_POOLER_PREPARED_STATEMENTS=false) allows only the unnamed statement; `named=True` also allows named
Parse messages, each name Parsed once per connection (what PgBouncer >= 1.21 with max_prepared_statements keeps
per client), and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tests.pgwire import Message, Session

# Statements whose effect outlives the transaction, by their first words (comments and literals removed).
_SESSION_STATEMENTS = [
    (re.compile(r"SET\s+(?!LOCAL\b|TRANSACTION\b|CONSTRAINTS\b)"), "SET without LOCAL changes the session"),
    (re.compile(r"RESET\b"), "RESET changes the session"),
    (re.compile(r"(UN)?LISTEN\b"), "LISTEN/UNLISTEN belongs to the session"),
    (re.compile(r"PREPARE\b"), "a SQL PREPARE outlives the transaction"),
    (re.compile(r"DEALLOCATE\b"), "DEALLOCATE acts on the session's prepared statements"),
    (re.compile(r"DECLARE\b.*\bWITH\s+HOLD\b"), "a WITH HOLD cursor outlives the transaction"),
    (re.compile(r"DISCARD\b"), "DISCARD acts on the session"),
    (re.compile(r"LOAD\b"), "LOAD loads a library into the session"),
    (re.compile(r"CREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP(ORARY)?\s+TABLE\b(?!.*\bON\s+COMMIT\s+DROP\b)"),
     "a temporary table without ON COMMIT DROP outlives the transaction"),
]  # fmt: skip
_SESSION_LOCK = re.compile(r"\bpg_(try_)?advisory_(un)?lock(_shared|_all)?\s*\(", re.IGNORECASE)
_SET_CONFIG = re.compile(r"\bset_config\s*\(", re.IGNORECASE)
_LOCAL_TRUE = {"true", "'true'", "'t'", "'on'", "on", "'1'"}
_TOKENS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$\w*\$).*?\1|;", re.DOTALL)


@dataclass(frozen=True)
class Violation:
    connection: int  # its index in the recorded sessions
    application: str
    position: int  # the message's index in its session
    message: Message
    reason: str


def violations(sessions: Iterable[Session], *, named: bool = False) -> list[Violation]:
    return [
        Violation(index, session.application, position, message, reason)
        for index, session in enumerate(sessions)
        for position, message, reason in _session(session.messages, named)
    ]


def statements(sql: str) -> list[str]:
    """The statements of `sql` split on `;` outside quotes and comments, literals kept, comments dropped."""
    parts, current, end = [], [], 0
    for token in _TOKENS.finditer(sql):
        current.append(sql[end : token.start()])
        end = token.end()
        if token.group() == ";":
            parts.append("".join(current))
            current = []
        elif not token.group().startswith(("--", "/*")):
            current.append(token.group())
    parts.append("".join([*current, sql[end:]]))
    return [part.strip() for part in parts if part.strip()]


def sql_reasons(sql: str) -> list[str]:
    """Why each statement of `sql` would leave something on the session (none: it leaves nothing)."""
    reasons = []
    for statement in statements(sql):
        bare = " ".join(_without_literals(statement).split()).upper()
        reasons += [reason for pattern, reason in _SESSION_STATEMENTS if pattern.match(bare)]
        if _SESSION_LOCK.search(statement):
            reasons.append("a session advisory lock (pg_*advisory_lock) outlives the transaction")
        reasons += [
            f"set_config(..., {local}) is session-level"
            for local in _set_config_locals(statement)
            if local.lower() not in _LOCAL_TRUE
        ]
    return reasons


def _without_literals(statement: str) -> str:
    return _TOKENS.sub(lambda token: "''" if token.group()[:1] in ("'", "$") else token.group(), statement)


def _set_config_locals(statement: str) -> Iterator[str]:
    """The third argument (is_local) of each set_config call, as written."""
    for call in _SET_CONFIG.finditer(statement):
        depth, arguments, start = 0, [], call.end()
        for index in range(call.end(), len(statement)):
            char = statement[index]
            if char == "(":
                depth += 1
            elif char == ")" and depth > 0:
                depth -= 1
            elif char in ",)" and depth == 0:
                arguments.append(statement[start:index].strip())
                start = index + 1
                if char == ")":
                    break
        yield arguments[2] if len(arguments) > 2 else "(missing)"


def _session(messages: list[Message], named: bool) -> Iterator[tuple[int, Message, str]]:
    """The violations of one connection, in the order of its messages."""
    epoch = 0  # ReadyForQuery 'I' seen so far: the pooler may switch server connections at each
    parsed: dict[str, int] = {}  # statement name: the epoch of its Parse
    for position, message in enumerate(messages):
        if message.kind == "Z":
            epoch += message.status == "I"
        elif message.kind == "Q":
            yield from ((position, message, reason) for reason in sql_reasons(message.sql))
        elif message.kind == "P":
            yield from ((position, message, reason) for reason in sql_reasons(message.sql))
            yield from _parse(position, message, named, parsed)
            parsed[message.statement] = epoch
        elif message.kind == "B":
            yield from _bind(position, message, epoch, parsed)


def _bind(position: int, message: Message, epoch: int, parsed: dict[str, int]) -> Iterator[tuple[int, Message, str]]:
    """A Bind relies on its statement being on the server connection it reaches: the unnamed one only within
    the transaction that Parsed it; a named one (a pooler that keeps them prepares it wherever it must) once
    Parsed on this connection."""
    if message.statement not in parsed:
        yield position, message, f"Bind of statement {message.statement!r}, never Parsed on this connection"
        return
    if not message.statement and parsed[""] != epoch:
        yield position, message, "Bind of the unnamed statement Parsed before a ReadyForQuery 'I'"


def _parse(position: int, message: Message, named: bool, parsed: dict[str, int]) -> Iterator[tuple[int, Message, str]]:
    if not message.statement:
        return
    if not named:
        yield position, message, f"named statement {message.statement!r} (only unnamed ones in strict mode)"
    elif message.statement in parsed:
        yield position, message, f"statement {message.statement!r} Parsed again on the same connection"


def report(found: list[Violation]) -> str:
    """The violations, one line each, for an assertion's message."""
    return "\n".join(
        f"connection {v.connection} ({v.application}) message {v.position} {v.message.kind} "
        f"{(v.message.sql or v.message.statement)[:120]!r}: {v.reason}"
        for v in found
    )
