"""How Envoy serves the console: one direct-response route per static file, right content types,
same origin as the API, and a console that waits visibly while otao is not there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from otao.console import STATIC_DIR
from otao.devstack.envoy import EnvoyProcess
from otao.devstack.processes import free_port
from tests.support.browser import Console, expect, open_console
from tests.support.otao import start_otao
from tests.support.stack import (
    EnvoyFactory,
    MongoServer,
    NatsServer,
    render_sample_envoy_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVOY_TEMPLATE = REPO_ROOT / "deploy" / "envoy.yaml"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}


def _route_config() -> dict[str, Any]:
    config = yaml.safe_load(ENVOY_TEMPLATE.read_text(encoding="utf-8"))
    listener = config["static_resources"]["listeners"][0]
    route_config: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]
    return route_config


def _static_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


def test_every_static_file_has_exactly_one_route_and_every_route_a_file() -> None:
    routes = _route_config()["virtual_hosts"][0]["routes"]
    served = {
        (REPO_ROOT / r["direct_response"]["body"]["filename"]).resolve(): r["match"]["path"]
        for r in routes
        if "filename" in r.get("direct_response", {}).get("body", {})
    }
    files = {p.resolve() for p in _static_files()}
    assert set(served) == files
    for path, url in served.items():
        relative = path.relative_to(STATIC_DIR).as_posix()
        assert url in (f"/console/{relative}", "/console/")


def test_every_static_file_fits_envoys_direct_response_limit() -> None:
    limit = _route_config()["max_direct_response_body_size_bytes"]
    assert all(p.stat().st_size < limit for p in _static_files())


async def test_each_file_is_served_with_its_content_type_and_unchanged(
    console_envoy: EnvoyProcess,
) -> None:
    async with httpx.AsyncClient(base_url=console_envoy.base_url) as client:
        for path in _static_files():
            relative = path.relative_to(STATIC_DIR).as_posix()
            response = await client.get(f"/console/{relative}")
            assert response.status_code == 200, relative
            assert response.headers["content-type"] == CONTENT_TYPES[path.suffix], relative
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.content == path.read_bytes(), relative
        index = await client.get("/console/", params={"code": "c", "state": "s"})
        assert index.content == (STATIC_DIR / "index.html").read_bytes()
        redirect = await client.get("/console")
        assert redirect.status_code == 301
        assert redirect.headers["location"].endswith("/console/")
        missing = await client.get("/console/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["message"] == "no such console file"


async def test_the_index_loads_every_module_up_front(console_envoy: EnvoyProcess) -> None:
    # No import waterfall: each module is named in a modulepreload link of the index.
    index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    for path in _static_files():
        if path.suffix == ".js" and path.name != "main.js":
            assert (
                f'rel="modulepreload" href="/console/{path.relative_to(STATIC_DIR).as_posix()}"'
                in index
            )


@pytest.fixture
async def envoy_without_otao(envoy_factory: EnvoyFactory) -> AsyncIterator[EnvoyProcess]:
    envoy = envoy_factory(free_port(), health_check_interval=0.5)
    yield envoy
    envoy.stop()


async def test_the_console_shows_reconnecting_until_otao_answers(
    browser: Any,
    envoy_without_otao: EnvoyProcess,
    request: pytest.FixtureRequest,
    nats_server: NatsServer,
    mongo_server: MongoServer,
) -> None:
    upstream = _upstream_port(envoy_without_otao)
    async for console in open_console(browser, envoy_without_otao.base_url, request):
        await _reconnects(console, upstream, nats_server, mongo_server)


def _upstream_port(envoy: EnvoyProcess) -> int:
    config = yaml.safe_load(envoy.config_path.read_text(encoding="utf-8"))
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "otao")
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    return int(address["address"]["socket_address"]["port_value"])


async def _reconnects(
    console: Console, grpc_port: int, nats_server: NatsServer, mongo_server: MongoServer
) -> None:
    await console.open("#/apps/smart-kettle/definitions")
    status = console.page.get_by_role("status").filter(has_text="Reconnecting")
    await expect(status).to_be_visible()
    kettle = {"name": "smart-kettle", "tenant_id": "default", "app_versions": ["kettle-v1"]}
    running = await start_otao(
        nats_server.url, mongo_server.uri, grpc_port=grpc_port, applications=[kettle]
    )
    try:
        await expect(console.page.get_by_role("table", name="Definitions")).to_be_visible()
        await expect(status).to_be_hidden()
    finally:
        await running.stop()


def test_rendering_puts_the_console_config_inline_and_files_by_absolute_path(
    tmp_path: Path,
) -> None:
    config = render_sample_envoy_config(
        tmp_path,
        template=ENVOY_TEMPLATE,
        console_config={"applications": ["a", "b"], "clientId": "c"},
    )
    listener = config["static_resources"]["listeners"][0]
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"
    ][0]["routes"]
    by_name = {r["name"]: r for r in routes}
    config = by_name["console-config-json"]["direct_response"]["body"]["inline_string"]
    assert json.loads(config) == {"applications": ["a", "b"], "clientId": "c"}
    index = by_name["console-index"]["direct_response"]["body"]["filename"]
    assert Path(index).is_absolute()
    assert Path(index).resolve() == (STATIC_DIR / "index.html").resolve()
