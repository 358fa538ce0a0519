"""A TCP proxy to put between a server and PostgreSQL, so a test can cut the database off
(kill the proxy: connections drop, new ones are refused) or make it hang (``--stall``: accept
connections and never forward a byte).

Usage: ``python tcp_proxy.py LISTEN_PORT TARGET_PORT [--stall]`` (both on 127.0.0.1). Prints
``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def main(listen_port: int, target_port: int, stall: bool) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if stall:
            await reader.read()  # hold the connection open until the client gives up
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), "--stall" in sys.argv[3:]))
