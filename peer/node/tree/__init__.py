"""The relay tree protocol of one peer, sans-IO: ``TreeState`` (state.py) and what it
returns (actions.py). No sockets, asyncio or clocks here; the node and the simulator
drive it."""
