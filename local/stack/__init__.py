"""The local stack: the control plane's Lambda functions, their triggers and agent tasks as local
processes, on moto (or a real account) and the LiveKit simulator (or a real server).

``DevSession`` starts all of it (``lkctl dev``, ``make demo``); ``LocalStack`` is the control
plane part alone, for callers that bring their own AWS and LiveKit.
"""
