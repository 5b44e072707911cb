"""Finds the API and calls it, signed with SigV4 (service ``execute-api``).

The base URL is ``--url``, or the ``ApiUrl`` output of the stack (CloudFormation
``DescribeStacks`` by name). With ``--dev`` it is the local stack (``make dev``), called
unsigned: that stack serves the IAM routes without checking SigV4, so no AWS credentials are
needed (like ``lk --dev``). Credentials come from the standard chain (environment, profile,
SSO, instance or container role), as the AWS CLI finds them. Failures become ``CliError`` with
the next step: no credentials, a stack not in this region, a signature API Gateway refuses,
a route or room that does not exist.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ProfileNotFound,
)
from botocore.httpsession import URLLib3Session

from cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient

SERVICE = "execute-api"
API_URL_OUTPUT = "ApiUrl"
# API Gateway gives up on an integration after 30 s; wait a little longer for its answer.
TIMEOUT_SECONDS = 35
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")

_REFUSED_CREDENTIALS = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}
)

NO_CREDENTIALS = (
    "No AWS credentials found. Configure them as for the AWS CLI: `aws configure`, "
    "`aws sso login --profile NAME` then --profile NAME (or AWS_PROFILE), or AWS_ACCESS_KEY_ID "
    "and AWS_SECRET_ACCESS_KEY. For the local stack (`make dev`) pass --dev instead."
)
LOCAL_STACK_URL = "http://127.0.0.1:8787/"  # `make dev`'s api_url (cli/dev.py DEFAULT_PORT)


def room_path(room: str, *rest: str) -> str:
    """``/rooms/<room>/...`` with the room name percent-encoded as one path segment."""
    return "/".join(["/rooms", quote(room, safe=""), *rest])


@dataclass(frozen=True)
class Target:
    """Where and how to call: ``url`` or ``stack``; ``region``/``profile`` for the session;
    ``local``: the local stack, unsigned (``url`` defaults to its address)."""

    url: str | None
    stack: str
    region: str | None
    profile: str | None
    local: bool = False


class ApiClient:
    def __init__(self, target: Target) -> None:
        if target.local and target.url is None:
            target = replace(target, url=LOCAL_STACK_URL)
        self._target = target
        try:
            self._session = boto3.Session(profile_name=target.profile, region_name=target.region)
        except ProfileNotFound as error:
            raise CliError(
                f"AWS profile {target.profile!r} is not configured: `aws configure list-profiles` "
                "shows the ones you have.",
                ExitCode.SETUP,
            ) from error
        self._base_url: str | None = target.url.rstrip("/") if target.url else None
        self._http = URLLib3Session(timeout=TIMEOUT_SECONDS)

    # --- finding the API --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self._base_url = self._stack_api_url().rstrip("/")
        return self._base_url

    def _region(self) -> str:
        host = urlsplit(self._base_url or "").hostname or ""
        if match := _EXECUTE_API_HOST.match(host):
            return self._target.region or match.group(1)
        region = self._target.region or self._session.region_name
        if not region:
            raise CliError(
                "No AWS region: pass --region (the stack's region) or set AWS_REGION.", ExitCode.SETUP
            )
        return region

    def _stack_api_url(self) -> str:
        stack = self._target.stack
        region = self._region()
        client: CloudFormationClient = self._session.client("cloudformation", region_name=region)
        try:
            [found] = client.describe_stacks(StackName=stack)["Stacks"]
        except NoCredentialsError as error:
            raise CliError(NO_CREDENTIALS, ExitCode.SETUP) from error
        except ClientError as error:
            raise _stack_error(error, stack, region) from error
        except BotoCoreError as error:
            raise CliError(f"Cannot reach CloudFormation in {region}: {error}", ExitCode.SETUP) from error
        for output in found.get("Outputs", []):
            if output.get("OutputKey") == API_URL_OUTPUT and output.get("OutputValue"):
                return str(output["OutputValue"])
        raise CliError(
            f"Stack {stack!r} in {region} has no {API_URL_OUTPUT} output: is it this project's "
            "stack? Pass --stack NAME, or --url.",
            ExitCode.SETUP,
        )

    # --- calling it -------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None
    ) -> Any:
        """The decoded JSON answer of a signed request; ``CliError`` for anything but 2xx."""
        url = self.base_url + path
        params = {key: value for key, value in (query or {}).items() if value is not None}
        if params:
            url += "?" + urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        if not self._target.local:
            SigV4Auth(self._credentials(), SERVICE, self._region()).add_auth(request)
        try:
            response = self._http.send(request.prepare())
        except BotoCoreError as error:
            raise CliError(self._unreachable(error), ExitCode.SETUP) from error
        payload = _json(response.content)
        if 200 <= response.status_code < 300:
            return payload
        region = "" if self._target.local else self._region()
        raise _api_error(response.status_code, payload, dict(response.headers), region)

    def _unreachable(self, error: BotoCoreError) -> str:
        if self._target.local:
            return f"Cannot reach the local stack at {self.base_url}: is `make dev` running? ({error})"
        return (
            f"Cannot reach the API at {self.base_url}: {error}. Check --url, or the stack's "
            f"{API_URL_OUTPUT} output."
        )

    def _credentials(self) -> Any:
        try:
            credentials = self._session.get_credentials()
        except BotoCoreError as error:
            raise CliError(f"{NO_CREDENTIALS} ({error})", ExitCode.SETUP) from error
        if credentials is None:
            raise CliError(NO_CREDENTIALS, ExitCode.SETUP)
        return credentials.get_frozen_credentials()


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return {"message": content.decode("utf-8", "replace")[:500]}


def _stack_error(error: ClientError, stack: str, region: str) -> CliError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if code == "ValidationError" and "does not exist" in message:
        return CliError(
            f"Stack {stack!r} not found in {region}. If it was deployed in another Region, pass "
            "--region (or set AWS_REGION); otherwise pass --stack NAME, or the API's --url.",
            ExitCode.SETUP,
        )
    if code in _REFUSED_CREDENTIALS:
        return CliError(
            f"AWS refused the credentials ({code}): refresh them (`aws sso login`, a new session).",
            ExitCode.SETUP,
        )
    if code in ("AccessDenied", "AccessDeniedException"):
        return CliError(
            f"These credentials may not describe stack {stack!r} (cloudformation:DescribeStacks): "
            "use a role that may, or pass the API's --url.",
            ExitCode.SETUP,
        )
    return CliError(f"CloudFormation: {code}: {message}", ExitCode.SETUP)


def _api_error(status: int, payload: Any, headers: dict[str, str], region: str) -> CliError:
    body = payload if isinstance(payload, dict) else {}
    error = str(body.get("error") or body.get("message") or f"HTTP {status}")
    if status == 403:
        if "region" in error.lower():
            return CliError(
                f"API Gateway refused the signature: {error} The API is not in {region}: pass the "
                "stack's --region.",
                ExitCode.SETUP,
            )
        return CliError(
            f"API Gateway refused the call (403: {error}). Every route needs SigV4 from an IAM "
            "principal allowed execute-api:Invoke on this API: check that your credentials "
            "(AWS_PROFILE, --profile) belong to the stack's account.",
        )
    if status == 404:
        if "error" not in body:
            return CliError(
                "The API has no such route (404): is --url the stack's ApiUrl, of a stack this "
                "CLI's version knows?"
            )
        return CliError(error.replace("GET /rooms", "`lkctl rooms`"))
    if status == 422 and body.get("fields"):
        details = "; ".join(f"{item['field']}: {item['reason']}" for item in body["fields"])
        return CliError(f"{error}: {details}")
    if status == 503:
        retry = headers.get("Retry-After") or headers.get("retry-after")
        return CliError(error + (f" (retry after {retry} s)" if retry and retry not in error else ""))
    if status >= 500 and "error" not in body:
        return CliError(f"The API failed (HTTP {status}: {error}): see the API function's logs.")
    return CliError(error)
