"""The API function's fixtures (``tests/api_harness.py``) for the integration tests."""

from tests.api_harness import api, backoff_sleeps  # noqa: F401  (fixtures)
