"""
Run inside the plesty venv (Python 3.12): serve plesty-lib's DemoDevice with
plesty-lib's own build_server on 127.0.0.1 (an ephemeral port unless one is
given), print the bound address on one line, and serve until stdin closes.

Usage: python plesty_server.py [tcp://127.0.0.1:*]
"""
import asyncio
import logging
import sys

from plesty.lib.service import build_server
from plesty.lib.sim.demo_device import DemoDevice

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


async def main(address: str) -> None:
    server = build_server(DemoDevice(), address=address)
    print(server.address, flush=True)
    task = asyncio.ensure_future(server.run())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:*"))
