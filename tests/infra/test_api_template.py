"""The API function in template.yaml against handlers/api.py: the same routes, all behind IAM.

API Gateway's IAM authorizer is what refuses unsigned calls: a route the template leaves open,
or one the handler serves that the template lacks (API Gateway would answer 404 before the
function ever ran), fails here.
"""

from __future__ import annotations

import json

from api import spec
from api.counters import LIFECYCLE_SERVICES
from handlers import api
from tests.infra import cfn
from tests.infra.cfn import ROOT, ref

OPENAPI_ROUTE = ("GET", "/openapi.json")


def _served() -> set[tuple[str, str]]:
    document = json.loads(spec.document(api.app))
    routes = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    source = (ROOT / "functions" / "handlers" / "api.py").read_text()
    assert f'@app.get("{OPENAPI_ROUTE[1]}"' in source, "the document route, left out of the document itself"
    return routes | {OPENAPI_ROUTE}


def _events() -> dict[str, dict[str, object]]:
    function = cfn.functions()["api"]
    return {
        name: event["Properties"]
        for name, event in function.properties["Events"].items()
        if event["Type"] == "HttpApi"
    }


def test_the_template_routes_exactly_what_the_handler_serves() -> None:
    routed = {(str(event["Method"]).upper(), str(event["Path"])) for event in _events().values()}

    assert routed == _served()
    assert {"/rooms/{room}/join", "/rooms", "/rooms/{room}", "/stats", "/gc"} <= {path for _, path in routed}


def test_every_api_route_needs_sigv4() -> None:
    assert cfn.resource("HttpApi")["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    for name, event in _events().items():
        assert event["ApiId"] == ref("HttpApi"), name
        assert event.get("PayloadFormatVersion") == "2.0", name
        assert "Auth" not in event, f"{name}: the default authorizer (AWS_IAM) must apply, never NONE"


def test_the_api_answers_before_api_gateway_gives_up() -> None:
    assert cfn.functions()["api"].properties["Timeout"] < 30, "HTTP API integrations end at 30 s"


def test_stats_read_the_metrics_of_every_function() -> None:
    services = {function.environment["POWERTOOLS_SERVICE_NAME"] for function in cfn.functions().values()}

    assert set(LIFECYCLE_SERVICES) == services, "api/counters.py LIFECYCLE_SERVICES"
