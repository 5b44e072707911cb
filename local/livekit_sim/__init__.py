"""A LiveKit server for one machine: Twirp APIs, rooms and their timeouts, agent workers and jobs,
signed webhooks with LiveKit's delivery behaviour, and a control endpoint to play participants.

``LiveKitSimulator`` is the whole of it behind one start/stop; ``FakeLiveKitServer`` is the
Twirp services alone over the in-memory twin (what contract and integration tests use);
``SimulatorClient`` calls the control endpoint and the worker API.
"""

from local.livekit_sim.client import SimulatorClient, SimulatorError
from local.livekit_sim.models import ParticipantKind, SimState, WebhookFaults
from local.livekit_sim.simulator import LiveKitSimulator
from local.livekit_sim.twirp import FakeLiveKitServer, RejectedAuth
from local.livekit_sim.webhooks import Delivery, DeliveryPolicy, Outcome

__all__ = [
    "Delivery",
    "DeliveryPolicy",
    "FakeLiveKitServer",
    "LiveKitSimulator",
    "Outcome",
    "ParticipantKind",
    "RejectedAuth",
    "SimState",
    "SimulatorClient",
    "SimulatorError",
    "WebhookFaults",
]
