"""Envoy for the local stack and the tests: deploy/envoy.yaml rendered for given ports, started.

The committed config is never edited: it is loaded, its listener/admin/cluster ports, hosts
and descriptor path are patched in the loaded YAML (not by string templating), and the copy is
what Envoy runs (docs/gateway.md). The descriptor set is gen/otao.pb, written by
``tools/gen.py`` only.

Envoy needs files of an otao checkout (``deploy/envoy.yaml``, ``gen/otao.pb``, the console's
static files): the checkout is the ``root`` argument when given, else ``$OTAO_DEV_ROOT``, else
the current directory (``make run`` runs from the checkout; see ``checkout_root``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import yaml

from otao.devstack.processes import (
    LOOPBACK,
    ProcessError,
    ServerProcess,
    find_binary,
    free_port,
    http_status,
)

ROOT_VARIABLE = "OTAO_DEV_ROOT"
# Inside a checkout: the Envoy template, and the descriptor set only tools/gen.py writes.
ENVOY_TEMPLATE = Path("deploy") / "envoy.yaml"
DESCRIPTOR_SET = Path("gen") / "otao.pb"


def checkout_root(root: Path | None = None) -> Path:
    """The otao checkout the stack's files come from: ``root``, else ``$OTAO_DEV_ROOT``, else
    the current directory; ``ProcessError`` unless it holds the Envoy template and gen/."""
    chosen = root or Path(os.environ.get(ROOT_VARIABLE) or Path.cwd())
    chosen = chosen.resolve()
    for needed in (ENVOY_TEMPLATE, DESCRIPTOR_SET):
        if not (chosen / needed).is_file():
            raise ProcessError(
                f"{chosen} is not an otao checkout (no {needed}): run from the checkout, "
                f"set {ROOT_VARIABLE}, or pass root="
            )
    return chosen


# Routes of the operator console in deploy/envoy.yaml (direct responses from otao/console/static).
CONSOLE_ROUTE_PREFIX = "console-"
CONSOLE_CONFIG_ROUTE = "console-config-json"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
REST_LISTENER = "rest"
OTAO_CLUSTER = "otao"


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for item in items:
        if item.get("name") == name:
            return item
    raise ProcessError(f"the Envoy config has no {what} named {name!r}")


class EnvoyOptions(TypedDict, total=False):
    """The optional parts of ``render_envoy_config``, which ``start_envoy`` passes on."""

    template: Path | None
    listen_host: str
    grpc_host: str
    health_check_interval: float | None
    extra_grpc_ports: Sequence[int]
    console_config: Mapping[str, Any] | None


def render_envoy_config(
    out_path: Path,
    *,
    listen_port: int,
    grpc_port: int,
    admin_port: int,
    descriptor_path: Path,
    root: Path | None = None,
    template: Path | None = None,
    listen_host: str = LOOPBACK,
    grpc_host: str = LOOPBACK,
    health_check_interval: float | None = None,
    extra_grpc_ports: Sequence[int] = (),
    console_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write a copy of ``template`` (deploy/envoy.yaml) with ports, hosts and the descriptor
    set path replaced, by patching the loaded YAML (not by string templating).

    ``root`` is the checkout (``checkout_root``), ``template`` its deploy/envoy.yaml unless
    given. ``extra_grpc_ports`` adds more replicas on ``grpc_host`` to the ``otao`` cluster.
    ``console_config`` replaces the console's /console/config.json (docs/console.md)."""
    root = checkout_root(root)
    template = template or root / ENVOY_TEMPLATE
    config: dict[str, Any] = yaml.safe_load(template.read_text(encoding="utf-8"))
    config["admin"]["address"]["socket_address"] = {
        "address": LOOPBACK,
        "port_value": admin_port,
    }
    resources = config["static_resources"]
    listener = _named(resources["listeners"], REST_LISTENER, "listener")
    listener["address"]["socket_address"].update(address=listen_host, port_value=listen_port)

    transcoders = [
        http_filter
        for chain in listener["filter_chains"]
        for network_filter in chain["filters"]
        for http_filter in network_filter.get("typed_config", {}).get("http_filters", [])
        if http_filter.get("name") == TRANSCODER_FILTER
    ]
    if not transcoders:
        raise ProcessError(f"the Envoy config has no {TRANSCODER_FILTER} filter")
    for transcoder in transcoders:
        transcoder["typed_config"]["proto_descriptor"] = str(descriptor_path)

    cluster = _named(resources["clusters"], OTAO_CLUSTER, "cluster")
    for locality in cluster["load_assignment"]["endpoints"]:
        template_endpoint = locality["lb_endpoints"][0]
        locality["lb_endpoints"] = []
        for port in (grpc_port, *extra_grpc_ports):
            lb_endpoint = copy.deepcopy(template_endpoint)
            lb_endpoint["endpoint"]["address"]["socket_address"].update(
                address=grpc_host, port_value=port
            )
            locality["lb_endpoints"].append(lb_endpoint)
    if health_check_interval is not None:
        for health_check in cluster.get("health_checks", []):
            health_check["interval"] = f"{health_check_interval:g}s"
            health_check["no_traffic_interval"] = f"{health_check_interval:g}s"

    _render_console(listener, console_config, root)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out_path


def _render_console(
    listener: dict[str, Any], console_config: Mapping[str, Any] | None, root: Path
) -> None:
    """The console's files by absolute path (the template's are relative to the checkout),
    and its config.json inline when given."""
    for chain in listener["filter_chains"]:
        for network_filter in chain["filters"]:
            route_config = network_filter.get("typed_config", {}).get("route_config", {})
            for host in route_config.get("virtual_hosts", []):
                for route in host.get("routes", []):
                    body = route.get("direct_response", {}).get("body", {})
                    if not route.get("name", "").startswith(CONSOLE_ROUTE_PREFIX):
                        continue
                    if route["name"] == CONSOLE_CONFIG_ROUTE and console_config is not None:
                        route["direct_response"]["body"] = {
                            "inline_string": json.dumps(dict(console_config))
                        }
                    elif "filename" in body:
                        body["filename"] = str(root / body["filename"])


class EnvoyProcess(ServerProcess):
    """Envoy: ``host:port`` is its REST listener; ready when its admin ``/ready`` says so too."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        admin_port: int,
        config_path: Path,
        argv: Sequence[str],
        log_path: Path,
        **kw: Any,
    ) -> None:
        self.admin_port = admin_port
        self.config_path = config_path
        super().__init__("envoy", listen_host, listen_port, argv, log_path, **kw)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"

    def _is_ready(self) -> bool:
        return http_status(LOOPBACK, self.admin_port, "/ready") == 200 and super()._is_ready()

    def _own_ports(self) -> list[tuple[str, int, str]]:
        return [
            (self.host, self.port, "envoy (REST listener)"),
            (LOOPBACK, self.admin_port, "envoy (admin)"),
        ]


def start_envoy(
    listen_port: int,
    grpc_port: int,
    descriptor_path: Path | None = None,
    admin_port: int = 0,
    *,
    run_dir: Path,
    root: Path | None = None,
    concurrency: int = 2,
    ready_timeout: float = 30.0,
    log_path: Path | None = None,
    **options: Unpack[EnvoyOptions],
) -> EnvoyProcess:
    """Start Envoy with a rendered copy of deploy/envoy.yaml: REST on ``listen_host:
    listen_port`` transcoded to otao's gRPC on ``grpc_host:grpc_port``.

    ``root`` is the checkout (``checkout_root``); the descriptor set is its gen/otao.pb (written
    by ``tools/gen.py`` only, error detail types included) unless ``descriptor_path``.
    ``admin_port`` 0 picks a free one. Hot restart is off and the base id dynamic, so several
    Envoys run side by side. The config goes to ``run_dir``, the log too unless ``log_path``.
    ``options`` are those of ``render_envoy_config``.
    """
    root = checkout_root(root)
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if admin_port == 0:
        admin_port = free_port()
    config_path = render_envoy_config(
        run_dir / f"envoy-{listen_port}.yaml",
        listen_port=listen_port,
        grpc_port=grpc_port,
        admin_port=admin_port,
        descriptor_path=(descriptor_path or root / DESCRIPTOR_SET).resolve(),
        root=root,
        **options,
    )
    argv = [
        str(find_binary("envoy")),
        "--config-path",
        str(config_path),
        "--disable-hot-restart",
        "--use-dynamic-base-id",
        "--concurrency",
        str(concurrency),
        "--log-level",
        "info",
    ]
    process = EnvoyProcess(
        options.get("listen_host", LOOPBACK),
        listen_port,
        admin_port,
        config_path,
        argv,
        log_path or run_dir / f"envoy-{listen_port}.log",
        ready_timeout=ready_timeout,
        cwd=root,
    )
    process.start()
    return process
