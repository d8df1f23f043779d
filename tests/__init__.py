"""The service's tests; pytest rewrites the asserts of their helper modules as it does those of test modules."""

import pytest

# Before any of them is imported (conftest imports this package first), so a failing assert there shows its values.
pytest.register_assert_rewrite("tests.client", "tests.accounts.api", "tests.developers.api", "tests.system.log_lines")
