"""Accounts: users, password hashing, bearer tokens, scope guards, errors, dependencies, routes, the `users` CLI."""
