"""The live side: websocket server, switchboard, hub (all on the asyncio loop)."""
