"""What the local stack takes from ``template.yaml``, read from the template itself so the two
cannot drift: the table and the timer queue (with its dead-letter queue) as create calls, the HTTP
API's routes and which function serves each, the timer function's event source mapping and the
sweep schedule.

Only what changes behaviour is carried over. Encryption, backups, deletion protection, alarms
and IAM have no local meaning; IAM-authorized routes are served without SigV4 (only the deployed
stack's API Gateway checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# Table properties that shape what the code sees; they read the same in CloudFormation and in
# DynamoDB's CreateTable.
TABLE_CREATE_PROPERTIES = (
    "BillingMode",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)
# Queue properties that are SQS attributes of the same name.
QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|second|seconds)\)")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: ``!Ref X`` reads as ``{"Ref": "X"}``,
    ``!GetAtt A.B`` as ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` as ``{"Fn::Sub": "s"}``."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Route:
    """One HTTP API route: ``method`` and ``path`` (``/rooms/{room}/join``) to a handler."""

    method: str
    path: str
    module: str
    """``handlers.webhook`` for ``Handler: handlers/webhook.handler``."""
    timeout_seconds: float
    iam: bool
    """Behind the API's IAM authorizer when deployed (SigV4); served openly here."""

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route serves the request (still percent-encoded, as API
        Gateway passes them), else None."""
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        found = re.fullmatch(pattern, path)
        return None if found is None else found.groupdict()


@dataclass(frozen=True)
class QueueDefinition:
    logical_id: str
    attributes: dict[str, str]
    """SQS attributes, the redrive policy's target still a ``{"Fn::GetAtt": …}``."""
    dead_letter: str | None
    """Logical id of the dead-letter queue its redrive policy names."""

    def create_attributes(self, dead_letter_arn: str | None) -> dict[str, str]:
        if self.dead_letter is None:
            return dict(self.attributes)
        assert dead_letter_arn is not None, f"{self.logical_id} needs its dead-letter queue first"
        redrive = json.loads(self.attributes["RedrivePolicy"])
        return self.attributes | {
            "RedrivePolicy": json.dumps(redrive | {"deadLetterTargetArn": dead_letter_arn})
        }


@dataclass(frozen=True)
class QueueMapping:
    """An SQS event source mapping: which function reads the queue, and how."""

    queue: str
    module: str
    timeout_seconds: float
    batch_size: int
    batching_window_seconds: int
    reports_item_failures: bool


@dataclass(frozen=True)
class Template:
    data: Mapping[str, Any]

    def resource(self, logical_id: str) -> dict[str, Any]:
        return dict(self.data["Resources"][logical_id])

    def functions(self) -> dict[str, dict[str, Any]]:
        """Serverless functions by logical id, SAM's ``Globals`` merged into their properties."""
        defaults = self.data.get("Globals", {}).get("Function", {})
        return {
            logical_id: _merged(defaults, resource["Properties"])
            for logical_id, resource in self.data["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def routes(self) -> list[Route]:
        """Every ``HttpApi`` event of every function, as that function's route."""
        found = []
        for properties in self.functions().values():
            for event in properties.get("Events", {}).values():
                if event["Type"] != "HttpApi":
                    continue
                spec = event["Properties"]
                authorizer = spec.get("Auth", {}).get("Authorizer")
                found.append(
                    Route(
                        method=spec["Method"].upper(),
                        path=spec["Path"],
                        module=_module(properties["Handler"]),
                        timeout_seconds=float(properties["Timeout"]),
                        iam=authorizer != "NONE",
                    )
                )
        return found

    def table(self, logical_id: str = "Table") -> tuple[dict[str, Any], str | None]:
        """CreateTable arguments (without the name) and the TTL attribute, if TTL is on."""
        properties = self.resource(logical_id)["Properties"]
        create = {key: properties[key] for key in TABLE_CREATE_PROPERTIES if key in properties}
        ttl = properties.get("TimeToLiveSpecification", {})
        return create, ttl.get("AttributeName") if ttl.get("Enabled") else None

    def queue(self, logical_id: str) -> QueueDefinition:
        properties = self.resource(logical_id)["Properties"]
        attributes = {key: str(properties[key]) for key in QUEUE_ATTRIBUTES if key in properties}
        dead_letter = None
        redrive = properties.get("RedrivePolicy")
        if redrive is not None:
            dead_letter = _get_att_arn(redrive["deadLetterTargetArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter, "maxReceiveCount": int(redrive["maxReceiveCount"])}
            )
        return QueueDefinition(logical_id, attributes, dead_letter)

    def queue_mapping(self, module: str) -> QueueMapping:
        """The SQS event source mapping of the function whose handler is ``module``."""
        for properties in self.functions().values():
            if _module(properties["Handler"]) != module:
                continue
            for event in properties.get("Events", {}).values():
                if event["Type"] == "SQS":
                    spec = event["Properties"]
                    return QueueMapping(
                        queue=_get_att_arn(spec["Queue"]),
                        module=module,
                        timeout_seconds=float(properties["Timeout"]),
                        batch_size=int(spec.get("BatchSize", 10)),
                        batching_window_seconds=int(spec.get("MaximumBatchingWindowInSeconds", 0)),
                        reports_item_failures="ReportBatchItemFailures"
                        in spec.get("FunctionResponseTypes", []),
                    )
        raise LookupError(f"no SQS event source for {module}")

    def schedule_seconds(self, module: str) -> tuple[float, float]:
        """The rate of the function's schedule (``rate(1 minute)``) and the function's timeout."""
        for properties in self.functions().values():
            if _module(properties["Handler"]) != module:
                continue
            for event in properties.get("Events", {}).values():
                if event["Type"] in ("ScheduleV2", "Schedule"):
                    expression = event["Properties"]["ScheduleExpression"]
                    found = _RATE.fullmatch(expression)
                    if found is None:
                        raise ValueError(f"only rate() schedules run locally, not {expression}")
                    unit = _UNIT_SECONDS[found[2].removesuffix("s")]
                    return float(int(found[1]) * unit), float(properties["Timeout"])
        raise LookupError(f"no schedule for {module}")

    def timeout_seconds(self, module: str) -> float:
        for properties in self.functions().values():
            if _module(properties["Handler"]) == module:
                return float(properties["Timeout"])
        raise LookupError(f"no function runs {module}")


@cache
def load(path: Path = TEMPLATE_PATH) -> Template:
    return Template(yaml.load(path.read_text(), Loader=_CfnLoader))


def _module(handler: str) -> str:
    """``handlers/webhook.handler`` -> ``handlers.webhook``."""
    return handler.rsplit(".", 1)[0].replace("/", ".")


def _get_att_arn(value: Any) -> str:
    """The logical id in ``!GetAtt X.Arn``."""
    logical_id, attribute = value["Fn::GetAtt"]
    assert attribute == "Arn", value
    return str(logical_id)


def _merged(defaults: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's rule for ``Globals``: maps merge (the function wins), anything else is replaced."""
    merged = dict(defaults)
    for key, value in own.items():
        base = merged.get(key)
        merged[key] = _merged(base, value) if isinstance(value, dict) and isinstance(base, dict) else value
    return merged
