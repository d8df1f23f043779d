"""Accounts: users, password hashing, bearer tokens, scope guards, their routes and the `users` CLI."""
