"""Who counts as a human: the one rule shared by the control plane and the agent worker.

LiveKit's ``ParticipantInfo.Kind``: STANDARD=0, INGRESS=1, EGRESS=2, SIP=3, AGENT=4,
CONNECTOR=7, BRIDGE=8. Agents and egress recorders never keep an agent alive; SIP callers
are people on a phone, so they do. Kinds LiveKit adds later count as human, which errs on
the side of keeping the agent rather than dropping a caller.
"""

from __future__ import annotations

AGENT_KIND = 4
EGRESS_KIND = 2
_NOT_HUMAN_NAMES = frozenset({"AGENT", "EGRESS"})
_NOT_HUMAN_NUMBERS = frozenset({AGENT_KIND, EGRESS_KIND})


def is_human(kind: int | str | None) -> bool:
    """True unless ``kind`` is AGENT or EGRESS, given as the proto number or its name.

    Accepts ``"AGENT"``, ``"PARTICIPANT_KIND_AGENT"`` (rtc SDK spelling), ``4`` and ``None``
    (a participant with no kind is a standard client).
    """
    if kind is None:
        return True
    if isinstance(kind, int):
        return kind not in _NOT_HUMAN_NUMBERS
    name = kind.upper().removeprefix("PARTICIPANT_KIND_")
    return name not in _NOT_HUMAN_NAMES
