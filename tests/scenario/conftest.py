"""The API function's fixtures (``tests/api_harness.py``) for the scenario tests."""

from tests.api_harness import api, backoff_sleeps, served_api  # noqa: F401  (fixtures)
