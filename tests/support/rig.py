"""What a targeted-rollout test drives: the session's otao, the CMX and EPR peers on its NATS,
the REST client through Envoy, and the test's own application (tests/services/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer
from tests.support.epr import EprPeer
from tests.support.otao import RunningOtao


@dataclass
class Rig:
    otao: RunningOtao
    cmx: CmxPeer
    epr: EprPeer
    rest: httpx.AsyncClient
    application: ApplicationConfig

    @property
    def app_version(self) -> str:
        """The application's first app version: the one the tests' endpoints poll as."""
        return self.application.app_versions[0]
