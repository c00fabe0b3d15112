"""Alerts, recording rules and the dashboard for pkiwarden, generated from one source.

``rules`` holds every PromQL expression once; ``dashboard`` builds its panels
from the same objects, so a query cannot drift from the rule it shows;
``manifests`` wraps them for prometheus-operator (PrometheusRule,
ServiceMonitors) and for a plain Prometheus. ``python -m pkiwarden.monitoring
deploy/monitoring`` (``make monitoring``) writes the files; a test fails when
the committed ones differ.
"""
