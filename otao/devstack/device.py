"""A device's side of 6/CDTP, played from the command line (see ``otao.cli``).

``poll`` and ``applied`` make one attempt within ``--timeout`` (connecting included): when
NATS cannot be reached they say so in one line and exit non-zero (``Unreachable``), without
nats-py's reconnect loop and its tracebacks. ``watch`` runs until stopped: it retries a lost
or absent NATS quietly and says once when it lost and when it regained the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from otao.messaging.avro import AvroCodec, MalformedPayload
from otao.messaging.connection import write_buffered
from otao.messaging.records import ConfigApplied, ConfigRequest, ConfigResponse, ConfigUpdated
from otao.messaging.subjects import (
    cdtp_request_subject,
    config_applied_subject,
    config_updated_subject,
)


class Unreachable(Exception):
    """NATS did not accept a connection in time; the message is the one line to print."""


def _why(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    return str(error).strip() or "connection failed"


async def _connect_once(url: str, timeout: float) -> Client:
    """Connect within ``timeout`` seconds, retrying at most once: nats-py's initial connect
    loops for ever unless the server's attempts are bounded (max_reconnect_attempts > 0)."""
    errors: list[Exception] = []

    async def remember(error: Exception) -> None:
        # Instead of nats-py's default, which logs a traceback for every failed attempt.
        errors.append(error)

    try:
        return await asyncio.wait_for(
            nats.connect(
                url,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                connect_timeout=max(timeout, 0.1),
                error_cb=remember,
            ),
            max(timeout, 0.1),
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        cause = errors[-1] if errors else error
        raise Unreachable(f"cannot reach NATS at {url} ({_why(cause)})") from None


def _content(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        decoded: object = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")
    return decoded


_Message = TypeVar("_Message", ConfigRequest, ConfigApplied)


def _about_config(kind: type[_Message], args: argparse.Namespace, **more: Any) -> _Message:
    """A new ``kind`` message about the endpoint and configuration the command names: what a
    poll and a report both carry, with a fresh correlation id and the time now."""
    return kind(
        correlation_id=uuid.uuid4().hex,
        timestamp=int(time.time() * 1000),
        app_version_name=args.app_version,
        endpoint_id=args.endpoint,
        config_id=args.config_id,
        **more,
    )


async def poll(args: argparse.Namespace) -> int:
    codec = AvroCodec()
    deadline = time.monotonic() + args.timeout
    client = await _connect_once(args.nats, args.timeout)
    reply = f"kaa.v1.replica.cli-{uuid.uuid4().hex[:8]}.cdtp.response"
    subscription = await client.subscribe(reply, max_msgs=1)
    request = _about_config(ConfigRequest, args)
    await client.publish(cdtp_request_subject(args.otao), codec.encode(request), reply=reply)
    try:
        message = await subscription.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
    except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError):
        print(f"no answer within {args.timeout:g} s (is otao running?)", file=sys.stderr)
        await client.close()
        return 1
    await client.close()
    if message.headers and message.headers.get("Status") == "503":
        # NATS itself answers "no responders" when no otao subscribes to the subject.
        print(f"no answer: no otao named {args.otao!r} serves this NATS", file=sys.stderr)
        return 1
    try:
        response = codec.decode(ConfigResponse, message.data)
    except MalformedPayload:
        print("the answer is not a 6/CDTP ConfigResponse", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "statusCode": response.status_code,
                "reasonPhrase": response.reason_phrase,
                "configId": response.config_id,
                "config": _content(response.content),
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0 if response.status_code < 400 else 2


async def applied(args: argparse.Namespace) -> int:
    codec = AvroCodec()
    client = await _connect_once(args.nats, args.timeout)
    event = _about_config(
        ConfigApplied,
        args,
        originator_replica_id="otao-cli",
        status_code=args.status,
        reason_phrase=args.reason,
    )
    await client.publish(config_applied_subject(args.consumer), codec.encode(event))
    try:
        await write_buffered(client)  # nats-py's flush alone fences only what was written
        await client.flush(timeout=max(int(args.timeout), 1))
    except (nats.errors.Error, TimeoutError):
        raise Unreachable(f"NATS at {args.nats} did not confirm the report") from None
    finally:
        await client.close()
    print(f"reported {args.endpoint} applied {args.config_id} with status {args.status}")
    return 0


class _Connection:
    """What ``watch`` says about its connection: each change once, never each retry."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connected = False  # ever
        self.lost = False
        self.closing = False

    def _say(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    async def failed(self, _error: Exception) -> None:
        # Every failed attempt lands here; only the first one before any connection is said.
        if not self.connected and not self.lost:
            self.lost = True
            self._say(f"cannot reach NATS at {self.url}; retrying quietly until it answers")

    async def disconnected(self) -> None:
        if self.connected and not self.lost and not self.closing:
            self.lost = True
            self._say(f"lost the connection to NATS at {self.url}; retrying quietly")

    async def reconnected(self) -> None:
        self.connected = True
        if self.lost:
            self.lost = False
            self._say(f"connected to NATS at {self.url} again; watching")


async def watch(args: argparse.Namespace) -> int:
    codec = AvroCodec()
    connection = _Connection(args.nats)
    client = await nats.connect(
        args.nats,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        error_cb=connection.failed,
        disconnected_cb=connection.disconnected,
        reconnected_cb=connection.reconnected,
    )
    await connection.reconnected()  # the first connection, after failed attempts

    async def show(message: Msg) -> None:
        update = codec.decode(ConfigUpdated, message.data)
        print(
            json.dumps(
                {
                    "endpointId": update.endpoint_id,
                    "appVersionName": update.app_version_name,
                    "configId": update.config_id,
                    "config": _content(update.content),
                },
                ensure_ascii=False,
            ),
            flush=True,
        )

    await client.subscribe(config_updated_subject(args.otao), cb=show)
    print("watching ConfigUpdated pushes; Ctrl-C to stop", file=sys.stderr)
    try:
        await asyncio.Event().wait()
    finally:
        connection.closing = True
        await client.close()
    return 0
