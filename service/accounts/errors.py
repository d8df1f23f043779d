"""What can go wrong with accounts, in the domain's words; service.web.problems answers each with its status."""

from __future__ import annotations

from service.core.errors import Conflict, NotFound


class AccountNotFound(NotFound):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"account {account_id} does not exist")


class AccountEmailTaken(Conflict):
    def __init__(self, email: str) -> None:
        super().__init__(f"an account with email {email!r} already exists")


class LastAdmin(Conflict):
    """The change would leave no active admin."""

    def __init__(self) -> None:
        super().__init__("this would leave no active admin account; make another admin first")
