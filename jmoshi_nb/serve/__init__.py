"""WebSocket serving: the protocol, the server (sessions -> engine), the client, the backends."""
