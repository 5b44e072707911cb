"""The API's OpenAPI document: served at ``GET /openapi.json`` and committed as
``docs/openapi.json`` (``make openapi``, :mod:`local.openapi`, rewrites it; a test fails while
the two differ). The app comes in as an argument: this module never imports the handler.

Every route needs SigV4: API Gateway's IAM authorizer checks it before the function runs. The
document says so the way API Gateway's own OpenAPI import does (``x-amazon-apigateway-authtype``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

TITLE = "LiveKit agent lifecycle API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Join tokens for app backends (the agent is requested at once) and room status and commands "
    "for operators. Every route needs an AWS SigV4 signature (service `execute-api`); the base "
    "URL is the stack's `ApiUrl` output. The LiveKit webhook on the same API is documented apart."
)
SIGV4 = "sigv4"
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def document(app: APIGatewayHttpResolver) -> str:
    scheme = APIKey.model_validate(
        {
            "type": "apiKey",
            "in": APIKeyIn.header,
            "name": "Authorization",
            "description": "AWS Signature Version 4 (service execute-api) with IAM credentials",
            "x-amazon-apigateway-authtype": "awsSigv4",
        }
    )
    return app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        security_schemes={SIGV4: scheme},
        security=[{SIGV4: []}],
    )
