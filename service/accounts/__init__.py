"""Accounts: users, password hashing, and (next) tokens, guards and their routes."""
