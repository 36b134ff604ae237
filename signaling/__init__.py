"""Signaling: the WebSocket hub, protocol v1 and its security. Never imports aiortc."""
