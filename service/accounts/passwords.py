"""Password hashing with argon2id (pwdlib's Argon2Hasher, argon2-cffi's recommended parameters).

A hash takes about 0.1 s of CPU by design; callers on the event loop run it in a worker thread.
"""

from __future__ import annotations

from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_HASHER = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches; with no hash (no such account) it still spends one verification, so the
    answer takes the same time whether or not the account exists."""
    if password_hash is None:
        _HASHER.verify(password, _unused_hash())
        return False
    return _HASHER.verify(password, password_hash)


@cache
def _unused_hash() -> str:
    # Made on first use rather than at import: a hash costs as much as a login.
    return _HASHER.hash("no account has this password")
