"""Observability: Prometheus metrics (``metrics``, ``server``, ``rollouts``) and the meters the
doors report to (``meters``)."""
