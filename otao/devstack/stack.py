"""``python -m otao.devstack`` (what ``make run`` calls): the whole stack on this machine.

Starts, in order, nats-server, nx-27017 (data in ``var/mongo``; skipped when ``OTAO_MONGODB_URI``
names a MongoDB), otao (``python -m otao``, security OFF, one example application) and Envoy
(REST -> otao's gRPC), waits for each to be ready, prints the addresses and a curl example, and
stops everything in reverse order on Ctrl-C or SIGTERM (or when one of them dies).

Ports, each overridable by environment: ``OTAO_DEV_REST_PORT`` (8080), ``OTAO_GRPC_PORT``
(50051), ``OTAO_DEV_NATS_PORT`` (4222), ``OTAO_DEV_MONGO_PORT`` (27017),
``OTAO_DEV_ENVOY_ADMIN_PORT`` (9901). Logs go to ``var/log/``. Envoy's files come from the
checkout: the current directory unless ``OTAO_DEV_ROOT`` names it (``envoy.checkout_root``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from otao.devstack.envoy import start_envoy
from otao.devstack.processes import LOOPBACK, ManagedProcess, ProcessError
from otao.devstack.servers import start_mongo, start_nats, start_otao

EXAMPLE_APPLICATION: dict[str, Any] = {
    "name": "smart-kettle",
    "tenant_id": "default",
    "app_versions": ["smart-kettle-v1"],
    "consent_required": False,
}


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise SystemExit(f"{name}={raw!r} is not a port number")
    return port


@dataclass(frozen=True)
class DevPorts:
    rest: int
    grpc: int
    nats: int
    mongo: int
    envoy_admin: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DevPorts:
        """Each port from its variable, else its default (the module docstring lists both)."""
        return cls(
            rest=_port(env, "OTAO_DEV_REST_PORT", 8080),
            grpc=_port(env, "OTAO_GRPC_PORT", 50051),
            nats=_port(env, "OTAO_DEV_NATS_PORT", 4222),
            mongo=_port(env, "OTAO_DEV_MONGO_PORT", 27017),
            envoy_admin=_port(env, "OTAO_DEV_ENVOY_ADMIN_PORT", 9901),
        )


def write_otao_config(path: Path, user_config: Path | None) -> Path:
    """Write otao's YAML config: the user's (OTAO_CONFIG_FILE), if any, plus the example
    application unless an application of that name is configured already."""
    config: dict[str, Any] = {}
    if user_config is not None:
        loaded = yaml.safe_load(user_config.read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else {}
    applications = list(config.get("applications") or [])
    if not any(a.get("name") == EXAMPLE_APPLICATION["name"] for a in applications):
        applications.append(dict(EXAMPLE_APPLICATION))
    config["applications"] = applications
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by `python -m otao.devstack` at every start; edit OTAO_CONFIG_FILE instead.\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class DevStack:
    """The local stack's processes, started in order and stopped in reverse."""

    def __init__(
        self,
        var_dir: Path,
        ports: DevPorts,
        env: Mapping[str, str],
        *,
        with_otao: bool = True,
        out: TextIO = sys.stdout,
    ) -> None:
        self.var_dir = var_dir.resolve()
        self.ports = ports
        self.env = dict(env)
        self.with_otao = with_otao
        self.out = out
        self.processes: list[ManagedProcess] = []
        self.external_mongodb_uri = self.env.get("OTAO_MONGODB_URI") or None
        self.log_dir = self.var_dir / "log"
        self.config_path = self.var_dir / "otao.yaml"

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.rest}"

    @property
    def mongodb_uri(self) -> str:
        return self.external_mongodb_uri or f"mongodb://{LOOPBACK}:{self.ports.mongo}"

    @property
    def nats_url(self) -> str:
        return f"nats://{LOOPBACK}:{self.ports.nats}"

    def otao_env(self) -> dict[str, str]:
        """otao's environment: ours, plus the local development settings."""
        env = dict(self.env)
        env.setdefault("OTAO_LOG_JSON", "false")
        env.update(
            OTAO_SECURITY__ENABLED="false",
            OTAO_NATS_URL=self.nats_url,
            OTAO_MONGODB_URI=self.mongodb_uri,
            OTAO_CONFIG_FILE=str(self.config_path),
        )
        return env

    def console_config(self) -> dict[str, Any]:
        """The console's config.json: where sign-in would go if security were on (the
        applications come from the API, GET /api/v1/applications)."""
        return {
            "clientId": "otao-console",
            "keycloakUrl": self.env.get("OTAO_SECURITY__KEYCLOAK_URL", "http://127.0.0.1:8180"),
            "issuers": {},
        }

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _started(self, process: ManagedProcess, what: str) -> None:
        self.processes.append(process)
        self._say(f"  ready: {what}")

    def start(self) -> None:
        """Start every process and wait for each; on failure stop those already started."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        user_config = self.env.get("OTAO_CONFIG_FILE")
        write_otao_config(self.config_path, Path(user_config) if user_config else None)
        self._say(f"starting the otao local stack (data and logs in {self.var_dir})")
        try:
            nats = start_nats(self.ports.nats, self.log_dir)
            self._started(nats, f"nats-server    {nats.url}")
            if self.external_mongodb_uri is None:
                mongo = start_mongo(self.ports.mongo, self.var_dir / "mongo")
                self._started(mongo, f"nx-27017       {mongo.uri}")
            else:
                self._say("  skipped: nx-27017 (OTAO_MONGODB_URI is set)")
            if self.with_otao:
                otao = start_otao(self.ports.grpc, self.log_dir / "otao.log", env=self.otao_env())
                self._started(otao, f"otao           {otao.grpc_target} (gRPC health SERVING)")
            envoy = start_envoy(
                self.ports.rest,
                self.ports.grpc,
                None,
                self.ports.envoy_admin,
                run_dir=self.var_dir / "envoy",
                log_path=self.log_dir / "envoy.log",
                console_config=self.console_config(),
            )
            self._started(envoy, f"envoy          {envoy.base_url}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every started process, newest first."""
        while self.processes:
            process = self.processes.pop()
            process.stop()
            self._say(f"  stopped: {process.name}")

    def dead(self) -> ManagedProcess | None:
        """A started process that is no longer running, if any."""
        return next((p for p in self.processes if not p.running), None)

    def banner(self) -> str:
        rest, grpc_port = self.rest_url, self.ports.grpc
        mongo = (
            f"{self.mongodb_uri} (external)"
            if self.external_mongodb_uri
            else f"{self.mongodb_uri} (nx-27017, data in {self.var_dir / 'mongo'})"
        )
        app = EXAMPLE_APPLICATION["name"]
        lines = [
            "",
            "otao local stack is up",
            "",
            f"  console        {rest}/console/",
            f"  REST (Envoy)   {rest}/api/v1/applications/{app}/software",
            f"  gRPC (otao)    {LOOPBACK}:{grpc_port}"
            + ("" if self.with_otao else "   (NOT started: --no-otao)"),
            f"  health         {rest}/healthz",
            f"  NATS           {self.nats_url}",
            f"  MongoDB        {mongo}",
            f"  Envoy admin    http://{LOOPBACK}:{self.ports.envoy_admin}",
            f"  logs           {self.log_dir}",
            f"  application    {app} (app version {EXAMPLE_APPLICATION['app_versions'][0]}, "
            f"tenant {EXAMPLE_APPLICATION['tenant_id']})",
            "",
            "  " + "!" * 86,
            "  !!  SECURITY IS OFF: local development mode. No authentication, no permission    !!",
            "  !!  checks; every call runs as tenant 'default'. Never expose these ports.       !!",
            "  " + "!" * 86,
            "",
            "  Try it:",
            f"    curl -sS -X POST {rest}/api/v1/applications/{app}/software \\",
            "      -H 'content-type: application/json' \\",
            '      -d \'{"version": "1.0.0", "upgradableFrom": ["0.9.0"], '
            '"rolloutStrategy": "general",',
            '           "specification": {"url": "https://example.com/smart-kettle-1.0.0.bin",'
            ' "sha256": "0f1e2d"}}\'',
            f"    curl -sS {rest}/api/v1/applications/{app}/software",
            "",
        ]
        if not self.with_otao:
            lines += [
                "  otao is not running; start it yourself (e.g. from a debugger) with:",
                f"    OTAO_SECURITY__ENABLED=false OTAO_CONFIG_FILE={self.config_path} "
                f"OTAO_NATS_URL={self.nats_url} OTAO_MONGODB_URI={self.mongodb_uri} "
                f"OTAO_GRPC_PORT={grpc_port} python -m otao",
                "",
            ]
        lines.append("  Ctrl-C stops everything.")
        return "\n".join(lines)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _already_stopping(_signum: int, _frame: FrameType | None) -> None:
    print("  (already stopping)", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m otao.devstack",
        description="Run otao's local stack: nats-server, nx-27017, otao and Envoy.",
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=Path(os.environ.get("OTAO_DEV_VAR_DIR", "var")),
        help="data and logs (default: ./var, or OTAO_DEV_VAR_DIR)",
    )
    parser.add_argument(
        "--no-otao",
        action="store_true",
        help="start everything but otao (run it yourself, e.g. from a debugger)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = DevStack(
        args.var_dir, DevPorts.from_env(os.environ), os.environ, with_otao=not args.no_otao
    )
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while (dead := stack.dead()) is None:
            time.sleep(0.5)
        print(
            f"\n{dead.name} exited with code {dead.returncode}; stopping the stack.\n"
            f"--- last lines of {dead.log_path}:\n{dead.log_tail()}",
            file=sys.stderr,
            flush=True,
        )
        code = 1
    except KeyboardInterrupt:
        print("\nstopping the otao local stack", flush=True)
    except ProcessError as error:
        print(f"\ncannot start the otao local stack: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGTERM, _already_stopping)
        signal.signal(signal.SIGINT, _already_stopping)
        stack.stop()
    return code
