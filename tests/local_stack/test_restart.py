"""The control plane restarted in the middle of a session (its state in moto kept, LiveKit up all
along) still ends the session clean: the sweep finds the agent task the old stack took with it,
the room gets an agent again while its humans are there, and none is left after they go."""

from __future__ import annotations

import dataclasses

import boto3
import pytest

from control_plane.adapters.dynamodb_store import DynamoDBStore
from control_plane.room import RoomState
from local.livekit_sim import LiveKitSimulator, SimulatorClient
from local.stack.aws import MotoServer, provision_moto
from local.stack.stack import LiveKitTarget, LocalStack
from local.stack.template import load
from local.stack.timeline import Timeline
from tests.local_stack.conftest import FAST_WORKERS, GRACE_SECONDS, stack_options
from tests.local_stack.helpers import agents_in, dispatches_in, eventually

KEY, SECRET = "devkey", "restart-test-secret-restart-test-secret"
ROOM = "restart"


def test_a_session_ends_clean_across_a_restart_of_the_stack(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The sweep takes a task it cannot find for gone once its launch is this old (30 s by default,
    # as ECS may not list a task just launched).
    options = stack_options(
        tmp_path_factory, sweep_interval_seconds=1.0, settings=FAST_WORKERS | {"CLAIM_LEASE_SECONDS": "3"}
    )
    timeline = Timeline()
    with MotoServer() as moto:
        moto.reset()
        aws = provision_moto(moto.url, load(), KEY, SECRET, prefix="restart")
        store = DynamoDBStore(
            boto3.client("dynamodb", endpoint_url=moto.url, region_name=aws.region, **_local_keys()),
            aws.table_name,
        )
        first = LocalStack(aws, options, timeline)
        first.listen()
        port = first.port
        with LiveKitSimulator(api_key=KEY, api_secret=SECRET, webhook_url=first.webhook_url) as simulator:
            sim = SimulatorClient(simulator.url)
            target = LiveKitTarget(simulator.url, KEY, SECRET, simulator_url=simulator.url)
            with first.start(target):
                sim.join(ROOM, "coach")
                eventually("the first agent", lambda: agents_in(sim, ROOM) == 1)
                sim.join(ROOM, "client")
                eventually("the client recorded", lambda: len(_humans(store)) == 2)

            # Down: its task went with it. LiveKit retries what it cannot deliver meanwhile.
            sim.refresh(ROOM, "client")
            second = LocalStack(aws, dataclasses.replace(options, port=port), timeline)
            second.listen()
            with second.start(target):
                assert second.runner is not None
                eventually("an agent again", lambda: agents_in(sim, ROOM) == 1, timeout=20)
                sim.leave(ROOM, identity="client")
                sim.leave(ROOM, identity="coach")
                eventually(
                    "the room closed",
                    lambda: (r := store.get(ROOM)) is not None and r.state is RoomState.CLOSED,
                    timeout=GRACE_SECONDS + 15,
                )
                eventually("no task", lambda: not second.runner.running() if second.runner else None, 10)
                assert agents_in(sim, ROOM) == 0
                assert dispatches_in(sim, ROOM) == 0
                assert second.runner.started() == 1, "one new agent, not one per trigger"
                assert not list(store.live_workers())


def _humans(store: DynamoDBStore) -> list[str]:
    room = store.get(ROOM)
    return [] if room is None else [human.identity for human in room.humans.values()]


def _local_keys() -> dict[str, str]:
    return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
