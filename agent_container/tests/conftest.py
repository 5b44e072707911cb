import sys
from pathlib import Path

AGENT_CONTAINER = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(AGENT_CONTAINER))
sys.path.insert(0, str(AGENT_CONTAINER / "tests"))
