"""Run a command inside a private network namespace with the real livekit-server ready for it:
``python -m local.e2e.netns -- pytest tests/e2e``.

The server is found or built first (building needs the Go module proxy, which the namespace
cannot reach). Then, as root, ``unshare -n`` makes a namespace with only ``lo`` and a veth pair
(``10.99.0.1/24`` and ``10.99.0.2/24``): nothing inside reaches anything outside, and ICE finds
real interface addresses (libwebrtc ignores loopback adapters). The command gets
``LIVEKIT_SERVER`` (the binary) and ``LIVEKIT_E2E_NODE_IP`` (the address the server binds).
"""

from __future__ import annotations

import os
import shutil
import sys

from local.livekit_server import ServerNotFound, build_server, find_server

NODE_IP = "10.99.0.1"
PEER_IP = "10.99.0.2"
NODE_IP_ENV = "LIVEKIT_E2E_NODE_IP"
SETUP = f"""set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add {NODE_IP}/24 dev v0
ip addr add {PEER_IP}/24 dev v1
ip link set v0 up
ip link set v1 up
exec "$@"
"""


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print("usage: python -m local.e2e.netns -- COMMAND...", file=sys.stderr)
        return 2
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        print("the e2e tier needs root, unshare and ip (a private network namespace)", file=sys.stderr)
        return 2
    try:
        server = find_server() or build_server()
    except ServerNotFound as error:
        print(f"livekit-server: {error}", file=sys.stderr)
        return 2
    os.environ["LIVEKIT_SERVER"] = str(server)
    os.environ[NODE_IP_ENV] = NODE_IP
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", SETUP, "sh", *command])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
