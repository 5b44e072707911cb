"""The committed OpenAPI document is the one the API serves (``make openapi`` rewrites it)."""

from __future__ import annotations

import json

from api import spec
from handlers import api


def test_docs_openapi_json_is_current() -> None:
    committed = json.loads(spec.COMMITTED.read_text())
    served = json.loads(spec.document(api.app))

    assert committed == served, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_every_route_needs_sigv4_and_answers_errors_in_one_shape() -> None:
    document = json.loads(spec.document(api.app))

    assert document["security"] == [{spec.SIGV4: []}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status != "200":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
