"""AWS for the local stack: an embedded moto server with the template's table and timer queue, or
a real account's table and queue.

moto's server answers requests on many threads, and checks a DynamoDB condition and applies its
update as two steps: two concurrent conditional writes can both pass conditions that exclude
each other, which DynamoDB never allows. DynamoDB requests are therefore served one at a time
(every other service concurrently, so a long poll on SQS blocks nothing). The LiveKit API key and
secret live in a Secrets Manager secret, as deployed; in both modes that secret is in moto (it
exists only for this run).
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from local.stack.events import REGION
from local.stack.template import Template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
TIMER_FUNCTION = "handlers.timer"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _dynamodb_one_at_a_time(app: WsgiApp) -> WsgiApp:
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serve


class _QuietRequestHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: one line per AWS call would bury the timeline."""


class MotoServer:
    """moto on 127.0.0.1 in this process; its state lives as long as the process (a restarted
    stack finds its rooms again while this server keeps running)."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> MotoServer:
        app = _dynamodb_one_at_a_time(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            "127.0.0.1", self._port, app, threaded=True, request_handler=_QuietRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self

    def reset(self) -> None:
        """Forget every resource (moto's state is the process's: a new session starts empty)."""
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")):
            pass

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass(frozen=True)
class AwsResources:
    """Where the control plane keeps its state, and the environment that points boto3 there."""

    region: str
    table_name: str
    queue_url: str
    queue_arn: str
    secret_arn: str
    env: dict[str, str]
    """Set for the functions and the workers: Region, and for moto its endpoint and credentials."""


def moto_env(moto_url: str, region: str = REGION) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    } | LOCAL_CREDENTIALS


def provision_moto(
    moto_url: str, template: Template, api_key: str, api_secret: str, prefix: str = "local"
) -> AwsResources:
    """The template's table and timer queue (and its dead-letter queue), and the LiveKit secret,
    in moto. Idempotent: a second call finds what the first made."""
    env = moto_env(moto_url)
    session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
    table_name = f"{prefix}-table"
    _create_table(session.client("dynamodb", endpoint_url=moto_url), template, table_name)
    queue_url, queue_arn = _create_timer_queue(session.client("sqs", endpoint_url=moto_url), template, prefix)
    secret_arn = _put_secret(session, moto_url, f"{prefix}-livekit", api_key, api_secret)
    return AwsResources(REGION, table_name, queue_url, queue_arn, secret_arn, env)


def use_account(
    moto_url: str, table_name: str, queue_url: str, api_key: str, api_secret: str, region: str | None = None
) -> AwsResources:
    """A real account's table and queue (made by a deployed stack), reached with your usual AWS
    credentials; only the LiveKit secret stays in moto."""
    session = boto3.Session(region_name=region)
    region_name = session.region_name or REGION
    sqs = session.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    session.client("dynamodb").describe_table(TableName=table_name)  # fail now, not at the first webhook
    secret_arn = _put_secret(
        boto3.Session(region_name=region_name, aws_access_key_id="local", aws_secret_access_key="local"),
        moto_url,
        f"local-livekit-{uuid.uuid4().hex[:8]}",
        api_key,
        api_secret,
    )
    env = {
        "AWS_DEFAULT_REGION": region_name,
        "AWS_REGION": region_name,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
    }
    return AwsResources(region_name, table_name, queue_url, queue_arn, secret_arn, env)


def _create_table(client: DynamoDBClient, template: Template, name: str) -> None:
    create, ttl_attribute = template.table()
    if name in client.list_tables()["TableNames"]:
        return
    client.create_table(TableName=name, **create)
    if ttl_attribute is not None:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
        )


def _create_timer_queue(client: SQSClient, template: Template, prefix: str) -> tuple[str, str]:
    """The queue the timer function reads, after the dead-letter queue its redrive names."""
    queue = template.queue(template.queue_mapping(TIMER_FUNCTION).queue)
    dead_letter_arn = None
    if queue.dead_letter is not None:
        dead_letter = template.queue(queue.dead_letter)
        _, dead_letter_arn = _create_queue(
            client, f"{prefix}-{dead_letter.logical_id}", dead_letter.attributes
        )
    return _create_queue(client, f"{prefix}-{queue.logical_id}", queue.create_attributes(dead_letter_arn))


def _create_queue(client: SQSClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _put_secret(session: boto3.Session, moto_url: str, name: str, api_key: str, api_secret: str) -> str:
    client = session.client("secretsmanager", endpoint_url=moto_url)
    value = json.dumps({"api_key": api_key, "api_secret": api_secret})
    try:
        return client.create_secret(Name=name, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:
        return client.put_secret_value(SecretId=name, SecretString=value)["ARN"]
