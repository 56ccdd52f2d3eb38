"""``python -m otao`` refuses to start with settings that could only fail later."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from otao.devstack.processes import free_port

pytestmark = pytest.mark.timeout(60)


def start(**env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("OTAO_")}
    # Nothing listens on these: a start that went past the check would hang or fail later.
    child_env.update(
        OTAO_GRPC_PORT=str(free_port()),
        OTAO_NATS_URL=f"nats://127.0.0.1:{free_port()}",
        OTAO_MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "otao"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("secret", ["", "   "], ids=["empty", "blank"])
def test_secure_mode_without_a_client_secret_fails_at_start_with_one_clear_line(
    secret: str,
) -> None:
    done = start(OTAO_SECURITY__ENABLED="true", OTAO_SECURITY__CLIENT_SECRET=secret)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "otao: cannot start: security is on but OTAO_SECURITY__CLIENT_SECRET is empty: set the "
        "secret of client 'otao' in realm 'kaa' (or OTAO_SECURITY__ENABLED=false for local "
        "development only)"
    ]
    assert done.stdout == ""
