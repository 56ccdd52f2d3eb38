"""``python -m otao``: run the service until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from otao import logs
from otao.settings import Settings

log = logging.getLogger("otao")


async def serve(settings: Settings) -> None:
    # Imported here: settings are checked first, so a refused start prints only its reason
    # (not the import-time warnings of the libraries the app pulls in).
    from otao.app import App

    app = App(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    await stop.wait()
    log.info("stopping: draining in-flight work")
    await app.stop()
    log.info("stopped")


def main() -> None:
    settings = Settings()
    problems = settings.startup_problems()
    if problems:
        for problem in problems:
            print(f"otao: cannot start: {problem}", file=sys.stderr)
        sys.exit(2)
    logs.configure(settings.log_level, settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
