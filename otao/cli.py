"""``otao device ...``: play Kaa CMX against a running otao, to see a device's flow by hand.

otao device poll --app-version smart-kettle-v1 --endpoint kettle-1 --config-id 1.0.0
otao device applied --app-version smart-kettle-v1 --endpoint kettle-1 --config-id 1.1.0
otao device watch

``poll`` and ``applied`` give up after ``--timeout`` seconds (connecting included) with one
line on stderr. Exit codes: 0 done, 1 no answer from otao, 2 otao answered with an error
status, 3 NATS unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from otao.devstack.device import Unreachable, applied, poll, watch

UNREACHABLE = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otao")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--otao", default="otao", help="otao's service instance name")
    parser.add_argument("--consumer", default="cmx-ota", help="the CDTP consumer's name")
    commands = parser.add_subparsers(dest="area", required=True)
    device = commands.add_parser("device", help="play a device behind Kaa CMX").add_subparsers(
        dest="command", required=True
    )
    for name in ("poll", "applied"):
        command = device.add_parser(name)
        command.add_argument("--app-version", required=True)
        command.add_argument("--endpoint", required=True)
        command.add_argument("--config-id", required=name == "applied")
        command.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
        if name == "applied":
            command.add_argument("--status", type=int, default=200)
            command.add_argument("--reason")
    device.add_parser("watch")
    args = parser.parse_args(argv)
    runner = {"poll": poll, "applied": applied, "watch": watch}[args.command]
    try:
        return asyncio.run(runner(args))
    except Unreachable as error:
        print(f"otao device {args.command}: {error}", file=sys.stderr)
        return UNREACHABLE
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
