"""Password hashing with argon2id (pwdlib's Argon2Hasher, argon2-cffi's recommended parameters).

A hash takes about 0.1 s of CPU and 64 MiB of memory by design; callers on the event loop run it in a worker
thread, and at most HASHES_AT_ONCE run at once per process, so a burst of sign-ins queues instead of taking
every core and a gigabyte of memory.
"""

from __future__ import annotations

import threading
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_HASHER = PasswordHash((Argon2Hasher(),))
HASHES_AT_ONCE = 2
_SLOTS = threading.BoundedSemaphore(HASHES_AT_ONCE)


def hash_password(password: str) -> str:
    with _SLOTS:
        return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches; with no hash (no such account) it still spends one verification, so the
    answer takes the same time whether or not the account exists."""
    stored = _unused_hash() if password_hash is None else password_hash
    with _SLOTS:
        matches = _HASHER.verify(password, stored)
    return matches and password_hash is not None


@cache
def _unused_hash() -> str:
    # Made on first use rather than at import: a hash costs as much as a login.
    return _HASHER.hash("no account has this password")
