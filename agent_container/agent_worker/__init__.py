"""The LiveKit voice-agent worker that runs in each Fargate task of the control plane.

It serves up to ``SLOTS_PER_TASK`` rooms, reports itself in its own ``TASK#`` record, and
cleans up after itself: each job ends when no human has been in its room for the grace
period, and the worker drains and exits when asked (record flag or SIGTERM) or when LiveKit
stays out of reach.
"""
