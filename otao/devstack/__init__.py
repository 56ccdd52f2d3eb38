"""The local stack: nats-server, nx-27017, Envoy and otao as child processes.

``processes`` starts and stops the real binaries (used by the test fixtures too), ``envoy``
renders deploy/envoy.yaml for given ports and starts Envoy on it; ``stack`` is
``python -m otao.devstack`` (what ``make run`` calls); ``device`` plays a device's side of
6/CDTP for ``otao device`` (a development tool, not part of the service).
"""
