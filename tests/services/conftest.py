"""Fixtures for the rollout tests: a Kaa EPR peer on the session's NATS, and the rig of
tests/support/rig.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer
from tests.support.epr import EprPeer
from tests.support.otao import RunningOtao
from tests.support.rig import Rig
from tests.support.stack import NatsServer


@pytest.fixture
async def epr(otao: RunningOtao, nats_server: NatsServer) -> AsyncIterator[EprPeer]:
    """EPR for one test: answers the session otao's filter membership queries."""
    peer = await EprPeer.connect(nats_server.url, otao.settings.kaa.epr)
    # An earlier test without EPR may have left the session's otao in its "EPR is absent"
    # backoff (NATS answered "no responders"): EPR is back now.
    otao.app.components.broker.membership.forget_absence()
    yield peer
    await peer.close()


@pytest.fixture
def rig(
    otao: RunningOtao,
    cmx: CmxPeer,
    epr: EprPeer,
    rest: httpx.AsyncClient,
    application: ApplicationConfig,
) -> Rig:
    return Rig(otao, cmx, epr, rest, application)
