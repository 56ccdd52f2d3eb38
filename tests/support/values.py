"""Values the store and service tests share: one tenant and application, and a start time."""

from __future__ import annotations

from datetime import UTC, datetime

TENANT = "tenant-a"
APP = "kettle"
# BSON dates keep milliseconds: a time with more precision would not come back as it was stored.
T0 = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
