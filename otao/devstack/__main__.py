"""``python -m otao.devstack``: run the local stack until Ctrl-C (see ``stack``)."""

from __future__ import annotations

import sys

from otao.devstack.stack import main

if __name__ == "__main__":
    sys.exit(main())
