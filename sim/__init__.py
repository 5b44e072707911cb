"""The policy simulator: seeded room traffic replayed in virtual time through each cleanup policy.

``traces`` makes and reads the traffic, ``world`` is LiveKit, ECS and the agent workers in a
discrete-event loop, ``policies`` are the control planes compared on it (``default`` is this
project's real core on the in-memory twins), ``report`` turns what happened into figures, JSON
and charts. ``python -m sim`` (``make simulate``) runs them all.
"""
