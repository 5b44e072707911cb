"""Faults injected at the ports' edge, never inside the core.

- :class:`TwinFaults` wraps a twin's method on the instance (so the controller, the sweeper and
  the task-event handler all meet it): the call raises, or takes effect and then raises (its
  reply was lost), or a concurrent writer acts just before it (a conditional conflict).
- :class:`AwsFaults` hooks botocore on a fresh default session, so every client the Lambda code
  creates meets it: a call is answered with an AWS error or a crafted reply, or its reply is
  replaced by an error after moto carried it out.

Both count what they injected, for the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import regex
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from control_plane import composition
from tests.harness import TwinStack

Predicate = Callable[..., bool]


def aws_error(code: str, operation: str, status: int = 400, message: str = "") -> ClientError:
    """The ClientError botocore raises once its own retries gave up."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or f"{code} (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 3},
        },
        operation,
    )


DYNAMODB_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "GetItem", "Query"})


def throttled(operation: str) -> ClientError:
    """The throttling error the service answers once botocore's retries are spent."""
    if operation in DYNAMODB_OPERATIONS:
        return aws_error("ProvisionedThroughputExceededException", operation)
    return aws_error("ThrottlingException", operation)


def always(*_: Any, **__: Any) -> bool:
    return True


@dataclass
class Fault:
    """A fault on ``stack.<port>.<method>`` for the calls ``when`` accepts, ``times`` times.

    ``error`` is raised instead of the call, or after it when ``after`` (the effect happened,
    the reply was lost); ``interleave`` runs just before the call instead (a concurrent writer).
    """

    port: str
    method: str
    error: Callable[[], Exception] | None = None
    when: Predicate = always
    after: bool = False
    times: int = 1
    interleave: Callable[[TwinStack], object] | None = None


@dataclass
class TwinFaults:
    stack: TwinStack
    injected: Counter[str] = field(default_factory=Counter)

    def arm(self, fault: Fault) -> None:
        target = getattr(self.stack, fault.port)
        original = getattr(target, fault.method)
        name = f"{fault.port}.{fault.method}"
        left = [fault.times]

        def faulty(*args: Any, **kwargs: Any) -> Any:
            if left[0] <= 0 or not fault.when(*args, **kwargs):
                return original(*args, **kwargs)
            left[0] -= 1
            self.injected[name] += 1
            if fault.interleave is not None:
                fault.interleave(self.stack)
                return original(*args, **kwargs)
            assert fault.error is not None
            if fault.after:
                original(*args, **kwargs)
            raise fault.error()

        setattr(target, fault.method, faulty)

    @property
    def total(self) -> int:
        return sum(self.injected.values())


@dataclass
class AwsFault:
    """On ``service.Operation`` calls ``when`` accepts (by their parameters), ``times`` times:
    raise ``error``, or answer with ``reply`` (an HTTP status and a parsed body), or let moto act
    and then raise ``error`` (``after``), or run ``interleave`` first (a concurrent writer)."""

    operation: str
    error: Callable[[], Exception] | None = None
    reply: tuple[int, Mapping[str, Any]] | None = None
    after: bool = False
    when: Callable[[Mapping[str, Any]], bool] = lambda params: True
    times: int = 1
    interleave: Callable[[], object] | None = None


class AwsFaults:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        session = boto3.Session(region_name="us-east-1")
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        self._session = session
        session.events.register("before-parameter-build", self._keep_params)
        session.events.register("before-call", self._before)
        session.events.register("after-call", self._after)
        composition.reset()  # the Lambda code's clients are created anew, from this session
        self.faults: list[tuple[AwsFault, list[int]]] = []
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def arm(self, fault: AwsFault) -> None:
        self.faults.append((fault, [fault.times]))

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def enforce_model_patterns(self, operation: str) -> None:
        """Refuse ``service.Operation`` calls whose strings break the service model's own
        ``pattern`` (botocore checks only types and lengths; AWS checks the rest), and tag keys
        or values under the reserved ``aws:`` prefix, with the error AWS answers."""
        service, name = operation.split(".")

        def check(model: Any, params: Mapping[str, Any], **_: Any) -> None:
            broken = pattern_violations(model.input_shape, params)
            broken += [f"reserved tag {tag!r}" for tag in _tags(params) if tag.lower().startswith("aws:")]
            if broken:
                self.injected[f"{operation} refused"] += 1
                raise aws_error("InvalidParameterException", name, message="; ".join(broken))

        self._session.events.register(f"before-parameter-build.{service}.{name}", check)

    def _match(self, name: str, params: Mapping[str, Any], after: bool) -> AwsFault | None:
        for fault, left in self.faults:
            if fault.operation == name and fault.after == after and left[0] > 0 and fault.when(params):
                left[0] -= 1
                self.injected[name] += 1
                return fault
        return None

    @staticmethod
    def _keep_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        """The API parameters, as the caller passed them (``before-call`` sees the wire request)."""
        context["reliability_params"] = dict(params)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        name = f"{model.service_model.service_name}.{model.name}"
        params = context.get("reliability_params", {})
        self.calls[name] += 1
        lost_reply = self._match(name, params, after=True)
        if lost_reply is not None:
            context["reliability_lost_reply"] = lost_reply  # moto acts; the reply is replaced later
        fault = self._match(name, params, after=False)
        if fault is None:
            return None
        if fault.interleave is not None:
            fault.interleave()
            return None
        if fault.reply is not None:
            status, parsed = fault.reply
            return AWSResponse("https://injected.invalid", status, {}, None), dict(parsed)
        assert fault.error is not None
        raise fault.error()

    def _after(self, context: Mapping[str, Any], **_: Any) -> None:
        lost_reply = context.get("reliability_lost_reply")
        if lost_reply is not None and lost_reply.error is not None:
            raise lost_reply.error()


def _tags(params: Mapping[str, Any]) -> list[str]:
    return [str(v) for tag in params.get("tags", []) for v in (tag.get("key", ""), tag.get("value", ""))]


def pattern_violations(shape: Any, value: Any, path: str = "") -> list[str]:
    """Strings in ``value`` that do not fully match their shape's ``pattern`` in the service model."""
    if shape is None:
        return []
    if shape.type_name == "structure" and isinstance(value, Mapping):
        return [
            found
            for key, member in shape.members.items()
            if key in value
            for found in pattern_violations(member, value[key], f"{path}.{key}")
        ]
    if shape.type_name == "list" and isinstance(value, list):
        return [
            found
            for i, item in enumerate(value)
            for found in pattern_violations(shape.member, item, f"{path}[{i}]")
        ]
    if shape.type_name == "map" and isinstance(value, Mapping):
        return [
            found
            for k, item in value.items()
            for found in pattern_violations(shape.value, item, f"{path}.{k}")
        ]
    pattern = shape.metadata.get("pattern")
    if (
        shape.type_name == "string"
        and pattern
        and isinstance(value, str)
        and not regex.fullmatch(pattern, value)
    ):
        return [f"{path.lstrip('.')}={value!r} does not match {pattern}"]
    return []
