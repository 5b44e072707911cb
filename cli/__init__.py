"""``lkctl``: the operator CLI for the LiveKit agent lifecycle's HTTP API.

One module per noun (``rooms``, ``join``, ``stats``, ``gc``) exports its commands; ``main`` holds
the group and the options every command shares; ``client`` finds the API (the stack's ``ApiUrl``
output, or ``--url``) and signs each call with SigV4 from the standard AWS credential chain;
``printer`` writes results to stdout (a table, or ``--json`` with the API's own models) and
status to stderr. Every error says what to do next.
"""
