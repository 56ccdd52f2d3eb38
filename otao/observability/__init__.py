"""Observability: Prometheus metrics (``metrics``, ``server``, ``rollouts``; the doors report
through the ports of ``otao.services.meters``)."""
