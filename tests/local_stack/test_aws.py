"""The local stack's AWS comes from the template, and its timer queue is read as Lambda reads it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.stack.aws import MotoServer, provision_moto, use_account
from local.stack.template import QueueMapping, load
from local.stack.timeline import Timeline
from local.stack.triggers import QueuePoller
from tests.local_stack.helpers import eventually

LOCAL_KEYS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.reset()
        yield server


def test_the_table_and_the_timer_queue_are_the_templates(moto: MotoServer) -> None:
    template = load()
    resources = provision_moto(moto.url, template, "key", "secret", prefix="aws-test")
    dynamodb = boto3.client("dynamodb", endpoint_url=moto.url, **LOCAL_KEYS)
    sqs = boto3.client("sqs", endpoint_url=moto.url, **LOCAL_KEYS)

    table = dynamodb.describe_table(TableName=resources.table_name)["Table"]
    declared = template.resource("Table")["Properties"]
    assert table["KeySchema"] == declared["KeySchema"]
    indexes = {index["IndexName"]: index["KeySchema"] for index in table["GlobalSecondaryIndexes"]}
    assert indexes == {index["IndexName"]: index["KeySchema"] for index in declared["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"attention-index", "slot-index"}
    ttl = dynamodb.describe_time_to_live(TableName=resources.table_name)["TimeToLiveDescription"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": declared["TimeToLiveSpecification"]["AttributeName"],
    }

    attributes = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"]
    queue = template.resource("TimerQueue")["Properties"]
    assert attributes["VisibilityTimeout"] == str(queue["VisibilityTimeout"])
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == queue["RedrivePolicy"]["maxReceiveCount"]
    assert redrive["deadLetterTargetArn"].endswith(":aws-test-TimerDeadLetterQueue")

    again = provision_moto(moto.url, template, "key", "secret", prefix="aws-test")
    assert again == resources, "provisioning twice finds what the first made"


def test_a_deployed_stacks_table_and_queue_with_the_secret_kept_local(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stands in for an account with another moto endpoint: what matters is that only Secrets
    Manager goes to the local endpoint."""
    deployed = provision_moto(moto.url, load(), "key", "secret", prefix="deployed")
    with MotoServer() as secrets:
        for name, value in {"AWS_ENDPOINT_URL": moto.url, "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
        resources = use_account(secrets.url, deployed.table_name, deployed.queue_url, "key", "secret")

        assert (resources.table_name, resources.queue_url, resources.queue_arn) == (
            deployed.table_name,
            deployed.queue_url,
            deployed.queue_arn,
        )
        assert resources.env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == secrets.url
        assert "AWS_ENDPOINT_URL" not in resources.env, "the table and queue are the account's"


def test_the_poller_deletes_what_the_function_handled_and_leaves_what_failed(moto: MotoServer) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto.url, **LOCAL_KEYS)
    url = sqs.create_queue(QueueName="poller-test", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for body in ("ok", "fails"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": body}))
    received: list[tuple[str, str]] = []
    lock = threading.Lock()

    def timer_function(module: str, event: dict[str, Any], timeout: float) -> dict[str, Any]:
        with lock:
            received.extend((r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"])
        failed = [r["messageId"] for r in event["Records"] if "fails" in r["body"]]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    mapping = QueueMapping("TimerQueue", "handlers.timer", 30.0, 10, 0, reports_item_failures=True)
    poller = QueuePoller(sqs, url, arn, mapping, timer_function, Timeline())
    poller.start()
    try:
        eventually("the failed message back", lambda: sum("fails" in body for body, _ in received) >= 2, 10)
    finally:
        poller.stop()

    assert sum("ok" in body for body, _ in received) == 1, "a handled message is deleted"
    assert ('{"kind": "fails"}', "2") in received, "a failed one comes back after the visibility timeout"
