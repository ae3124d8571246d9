"""SSU2 (ssu2.rst): sans-I/O headers, blocks, handshake and data phase, and the asyncio UDP driver on top."""
