"""The HTTP API for app backends and operators: join tokens, room status, operator commands.

``handlers/api.py`` holds the one resolver; ``routes/`` one ``Router`` per noun; ``models.py`` the
request and response models (the CLI prints the same ones); ``logic/`` one call per route over the
core (``RoomController``) and a few read-only adapters of its own (``room_index``, ``counters``,
``livekit_rooms``). No decisions are made here: every change to a room goes through the
controller, so the API is one more trigger of the same ``reconcile``.
"""
