"""Running the control plane on one machine: the LiveKit simulator and the demo session."""
