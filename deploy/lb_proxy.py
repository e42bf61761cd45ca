"""A small load balancer for trying replicas on one machine: each new TCP
connection goes to the next backend in turn, skipping any that refuses it.
No sticky sessions and no HTTP parsing, so what reaches a replica is
exactly what the client sent (its Host header included).

    python3 deploy/lb_proxy.py --listen 127.0.0.1:5000 \\
        --backend 127.0.0.1:5001 --backend 127.0.0.1:5002

A real deployment puts nginx, HAProxy or a cloud balancer here; this one
exists so that `make team-demo` and the replica tests need nothing more
than Python's standard library. A backend that dies mid-request drops the
client's connection, as a real balancer does; clients retry (the `mlflow`
client and labbook's SDK both do) and reach a live replica.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading

Address = tuple[str, int]
CONNECT_TIMEOUT_S = 2.0


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(1 << 16):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # Either side ending ends the exchange: a client that closed is done,
        # and a replica that closed (or died) has nothing more to answer.
        with contextlib.suppress(Exception):
            sink.close()


class RoundRobinProxy:
    def __init__(self, backends: list[Address]) -> None:
        if not backends:
            raise ValueError("a proxy needs at least one backend")
        self.backends = backends
        self._next = 0
        self.connections = 0
        self.refused = 0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.backends:
            host, port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
                )
            except (OSError, asyncio.TimeoutError):
                self.refused += 1
        return None

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream = await self._connect()
        if upstream is None:
            # No replica is up: close at once so the client retries soon.
            client_w.close()
            return
        up_r, up_w = upstream
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))

    async def serve(self, listen: Address, started: threading.Event | None = None) -> None:
        server = await asyncio.start_server(self.handle, listen[0], listen[1], reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]
        if started is not None:
            started.set()
        async with server:
            await server.serve_forever()


class ProxyThread:
    """The proxy on its own event loop in a daemon thread (for tests and the
    demo); `port` is where it listens."""

    def __init__(self, backends: list[Address], listen: Address = ("127.0.0.1", 0)) -> None:
        self.proxy = RoundRobinProxy(backends)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._task: asyncio.Future[None] | None = None

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._task = asyncio.ensure_future(self.proxy.serve(listen, started))
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._task)
            # Connections still open end with the proxy.
            open_ones = asyncio.all_tasks(self._loop)
            for task in open_ones:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*open_ones, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="lb-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"the proxy did not listen on {listen[0]}:{listen[1]}")
        self.port: int = self.proxy.port
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_address, default=("127.0.0.1", 5000))
    parser.add_argument(
        "--backend", type=parse_address, action="append", required=True, help="HOST:PORT, repeated"
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(RoundRobinProxy(args.backend).serve(args.listen))


if __name__ == "__main__":
    main()
