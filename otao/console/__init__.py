"""The operator console: a static single-page app (``static/``) that Envoy serves at /console/.

Nothing here runs in otao's process; the package only carries the files (package data) so an
installed otao ships them too. How they are served and why: docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
