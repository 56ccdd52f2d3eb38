"""A real 3-node NATS cluster on loopback ports, for the cluster drill.

Each node is a nats-server (from the devstack's binaries) with a client port, a cluster port
with routes to every node, and a monitoring port: ``/connz`` says which node a client (otao's
connection is named after its replica id) is connected to, ``/routez?subs=1`` what interest a
node has learned from each other node. The drill waits on those instead of on time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otao.devstack.processes import LOOPBACK, free_port
from otao.devstack.servers import NatsProcess, start_nats


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    monitor_port: int
    log_dir: Path
    routes: list[str]
    process: NatsProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        args = [
            "--name",
            self.name,
            "-m",
            str(self.monitor_port),
            "--cluster_name",
            "drill",
            "--cluster",
            f"nats://{LOOPBACK}:{self.cluster_port}",
            "--routes",
            ",".join(self.routes),
        ]
        self.process = start_nats(self.port, self.log_dir, extra_args=args)

    async def sigkill(self) -> None:
        """A crash of the node: SIGKILL to nats-server and its watchdog at once."""
        assert self.process is not None and self.process.pid is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.stop, 5.0)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(5.0)

    async def monitor(self, path: str) -> dict[str, Any]:
        def get() -> dict[str, Any]:
            url = f"http://{LOOPBACK}:{self.monitor_port}{path}"
            with urllib.request.urlopen(url, timeout=2) as response:
                answer: dict[str, Any] = json.load(response)
                return answer

        return await asyncio.to_thread(get)

    async def client_names(self) -> set[str]:
        """Names of the clients connected to this node right now."""
        connz = await self.monitor("/connz?limit=1024")
        return {c.get("name", "") for c in connz.get("connections") or []}

    async def routed_subjects(self, other: str) -> set[str]:
        """The subjects this node forwards to node ``other`` (its interest, over any route)."""
        routez = await self.monitor("/routez?subs=1")
        subjects: set[str] = set()
        for route in routez.get("routes") or []:
            if route.get("remote_name") == other:
                subjects.update(route.get("subscriptions_list") or [])
        return subjects

    async def route_names(self) -> set[str]:
        routez = await self.monitor("/routez")
        return {r.get("remote_name", "") for r in routez.get("routes") or []}


class NatsCluster:
    def __init__(self, run_dir: Path, size: int = 3) -> None:
        ports = [(free_port(), free_port(), free_port()) for _ in range(size)]
        routes = [f"nats-route://{LOOPBACK}:{cluster}" for _, cluster, _ in ports]
        self.nodes = [
            NatsNode(f"n{i + 1}", port, cluster, monitor, run_dir / f"n{i + 1}", routes)
            for i, (port, cluster, monitor) in enumerate(ports)
        ]

    async def start(self) -> None:
        for node in self.nodes:
            await asyncio.to_thread(node.start)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    async def fully_meshed(self) -> bool:
        """Every node has a route to every other node."""
        for node in self.nodes:
            others = {n.name for n in self.nodes} - {node.name}
            if not others <= await node.route_names():
                return False
        return True

    async def where(self, client_name: str, among: list[NatsNode] | None = None) -> str | None:
        """The node the client named ``client_name`` is connected to, if any."""
        for node in among if among is not None else self.nodes:
            with suppress(OSError):
                if client_name in await node.client_names():
                    return node.name
        return None
