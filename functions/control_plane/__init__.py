"""Control-plane core: pure decisions (``reconcile``), ports, and the adapters behind them.

Kept import-light on purpose: the agent container imports ``control_plane.humans`` and
``control_plane.worker_protocol`` without boto3 or livekit-api installed.
"""
