"""The local stack: nats-server, nx-27017, Envoy and otao as child processes.

``processes`` starts and stops the real binaries (used by the test fixtures too); ``stack`` is
``python -m otao.devstack`` (what ``make run`` calls).
"""
