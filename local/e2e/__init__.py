"""The e2e tier's machinery (issue 19): the real livekit-server, a private network namespace,
WebRTC humans, and the local stack running the real agent worker against them."""
