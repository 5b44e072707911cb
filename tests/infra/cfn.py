"""Read template.yaml the way CloudFormation does (intrinsic tags included) for the infra tests."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"


@cache
def template() -> dict[str, Any]:
    """The template as plain data: ``!Ref X`` reads as ``{"Ref": "X"}``, ``!GetAtt A.B`` as
    ``{"Fn::GetAtt": ["A", "B"]}``."""
    parsed, errors = decode_str(TEMPLATE_PATH.read_text())
    assert not errors, errors
    assert parsed is not None
    return parsed


def resources(kind: str | None = None) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template()["Resources"].items()
        if kind is None or resource["Type"] == kind
    }


def resource(name: str) -> dict[str, Any]:
    return template()["Resources"][name]


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def listify(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Function:
    logical_id: str
    module: str
    """``webhook`` for ``Handler: handlers/webhook.handler``."""
    properties: dict[str, Any]
    """The function's properties with SAM Globals merged in."""

    @property
    def environment(self) -> dict[str, Any]:
        return dict(self.properties.get("Environment", {}).get("Variables", {}))


def _merge_globals(globals_: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """SAM's rule: maps merge (the function wins), everything else the function overrides."""
    merged = dict(globals_)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_globals(merged[key], value)
        else:
            merged[key] = value
    return merged


def functions() -> dict[str, Function]:
    """Lambda functions by handler module."""
    globals_ = template().get("Globals", {}).get("Function", {})
    found: dict[str, Function] = {}
    for logical_id, res in resources("AWS::Serverless::Function").items():
        properties = _merge_globals(globals_, res["Properties"])
        handler = properties["Handler"]
        assert handler.startswith("handlers/") and handler.endswith(".handler"), handler
        module = handler.removeprefix("handlers/").removesuffix(".handler")
        assert module not in found, f"two functions run handlers/{module}.py"
        found[module] = Function(logical_id, module, properties)
    return found


def role_statements(role_name: str) -> list[dict[str, Any]]:
    """Every statement a role in this template grants: inline policies and attached policies,
    which must be managed policies defined in this template (no AWS managed policies)."""
    role = resource(role_name)
    assert role["Type"] == "AWS::IAM::Role", role_name
    properties = role["Properties"]
    statements: list[dict[str, Any]] = []
    for policy in properties.get("Policies", []):
        statements += listify(policy["PolicyDocument"]["Statement"])
    for arn in properties.get("ManagedPolicyArns", []):
        assert isinstance(arn, dict) and set(arn) == {"Ref"}, (
            f"{role_name}: attach only this template's policies, not {arn}"
        )
        managed = resource(arn["Ref"])
        assert managed["Type"] == "AWS::IAM::ManagedPolicy", arn
        statements += listify(managed["Properties"]["PolicyDocument"]["Statement"])
    return statements


def function_role(function: Function) -> str:
    role = function.properties.get("Role")
    assert isinstance(role, dict) and role.get("Fn::GetAtt", [None])[1:] == ["Arn"], (
        f"{function.logical_id} must use its own role from this template (Role: !GetAtt <Role>.Arn)"
    )
    return str(role["Fn::GetAtt"][0])


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in listify(statement["Action"])}


def agent_container() -> dict[str, Any]:
    [container] = resource("AgentTaskDefinition")["Properties"]["ContainerDefinitions"]
    return dict(container)


def conditional_items(items: list[Any]) -> list[Any]:
    """List items with ``!If [cond, item, !Ref AWS::NoValue]`` read as present."""
    out = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            _, when_true, when_false = item["Fn::If"]
            for branch in (when_true, when_false):
                if branch != {"Ref": "AWS::NoValue"}:
                    out.append(branch)
        else:
            out.append(item)
    return out


def evaluate(value: Any, parameters: dict[str, str]) -> Any:
    """Resolve the intrinsics the template builds strings with (``Ref``, ``Fn::Sub`` of names,
    ``Fn::Join``, ``Fn::Split``, ``Fn::Select``) for given parameter values, pseudo parameters
    (``AWS::Partition``) included: what CloudFormation would make of an expression."""
    if isinstance(value, list):
        return [evaluate(item, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    [(function, argument)] = value.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Sub":
        assert isinstance(argument, str), "Fn::Sub with a variable map is not supported here"
        return re.sub(r"\$\{([\w:]+)\}", lambda name: parameters[name.group(1)], argument)
    if function == "Fn::Join":
        delimiter, items = argument
        return delimiter.join(evaluate(items, parameters))
    if function == "Fn::Split":
        delimiter, source = argument
        return evaluate(source, parameters).split(delimiter)
    if function == "Fn::Select":
        index, items = argument
        return evaluate(items, parameters)[int(index)]
    raise AssertionError(f"cannot evaluate {function}")


@cache
def agent_module(name: str) -> ModuleType:
    """``agent_worker.<name>`` loaded by path, for modules that import no livekit-agents (the
    package does, and the functions' test environment has none)."""
    path = ROOT / "agent_container" / "agent_worker" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_agent_worker_{name}_by_path", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module
