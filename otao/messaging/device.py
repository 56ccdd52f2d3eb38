"""A device's side of 6/CDTP, played from the command line (see ``otao.cli``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

import nats
from nats.aio.msg import Msg

from otao.messaging.avro import AvroCodec
from otao.messaging.records import ConfigApplied, ConfigRequest, ConfigResponse, ConfigUpdated
from otao.messaging.subjects import (
    cdtp_request_subject,
    config_applied_subject,
    config_updated_subject,
)


def _content(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        decoded: object = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")
    return decoded


async def poll(args: argparse.Namespace) -> int:
    codec = AvroCodec()
    client = await nats.connect(args.nats)
    reply = f"kaa.v1.replica.cli-{uuid.uuid4().hex[:8]}.cdtp.response"
    subscription = await client.subscribe(reply, max_msgs=1)
    request = ConfigRequest(
        correlation_id=uuid.uuid4().hex,
        timestamp=int(time.time() * 1000),
        app_version_name=args.app_version,
        endpoint_id=args.endpoint,
        config_id=args.config_id,
    )
    await client.publish(cdtp_request_subject(args.otao), codec.encode(request), reply=reply)
    try:
        message = await subscription.next_msg(timeout=args.timeout)
    except nats.errors.TimeoutError:
        print("no answer (is otao running?)", file=sys.stderr)
        await client.close()
        return 1
    response = codec.decode(ConfigResponse, message.data)
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
    await client.close()
    return 0 if response.status_code < 400 else 2


async def applied(args: argparse.Namespace) -> int:
    codec = AvroCodec()
    client = await nats.connect(args.nats)
    event = ConfigApplied(
        correlation_id=uuid.uuid4().hex,
        timestamp=int(time.time() * 1000),
        app_version_name=args.app_version,
        endpoint_id=args.endpoint,
        config_id=args.config_id,
        originator_replica_id="otao-cli",
        status_code=args.status,
        reason_phrase=args.reason,
    )
    await client.publish(config_applied_subject(args.consumer), codec.encode(event))
    await client.flush()
    await client.close()
    print(f"reported {args.endpoint} applied {args.config_id} with status {args.status}")
    return 0


async def watch(args: argparse.Namespace) -> int:
    codec = AvroCodec()
    client = await nats.connect(args.nats)

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
        await client.close()
    return 0
