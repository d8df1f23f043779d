"""Passwords are stored as argon2id hashes, and an unknown account costs a verification too."""

from __future__ import annotations

import time

from service.accounts.passwords import hash_password, verify_password


def test_hash_is_argon2id_and_verifies_only_the_password() -> None:
    password = "correct horse battery staple"
    hashed = hash_password(password)
    assert hashed.startswith("$argon2id$")
    assert password not in hashed
    assert hash_password(password) != hashed  # salted
    assert verify_password(password, hashed)
    assert not verify_password("correct horse battery stapler", hashed)


def test_no_account_is_false_and_costs_a_verification() -> None:
    hashed = hash_password("another long password")
    verify_password("warm-up", None)  # the unused hash is made on first use
    started = time.perf_counter()
    assert not verify_password("another long password", None)
    unknown = time.perf_counter() - started
    started = time.perf_counter()
    assert not verify_password("a wrong password", hashed)
    known = time.perf_counter() - started
    # Both run one argon2 verification (~0.1 s); neither is an instant answer that would reveal the account.
    assert unknown > known / 4
    assert known > unknown / 4
