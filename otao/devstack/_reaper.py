"""Run one command and take it down when the process that started us goes away.

Usage: ``python _reaper.py <parent-pid> <command> [args...]``. Run as a script (it imports
nothing from otao), as the direct child of ``processes.ManagedProcess``: SIGTERM, SIGINT and
SIGHUP are forwarded to the command; when the parent dies without cleaning up (SIGKILL, a
crash), the command gets SIGTERM, then SIGKILL after a grace period. The exit code is the
command's (128 + N when a signal N ended it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

POLL_SECONDS = 0.25
GRACE_SECONDS = 10.0


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write("usage: _reaper.py <parent-pid> <command> [args...]\n")
        return 2
    parent = int(argv[1])
    child = subprocess.Popen(argv[2:])

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)

    while True:
        try:
            return _exit_code(child.wait(timeout=POLL_SECONDS))
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            child.terminate()
            try:
                child.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return _exit_code(child.returncode)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
