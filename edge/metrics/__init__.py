"""The optional Prometheus endpoint (``[metrics] listen``): the gateway's counters, read at scrape time.

* ``sources.py``: what each component contributes (devices, twin, OPC UA server, history, build)
  and ``gateway_collector``, which registers one source per component;
* ``collector.py``: ``GatewayCollector``, the prometheus ``Collector`` that walks those sources;
* ``endpoint.py``: ``MetricsEndpoint``, the HTTP listener on the event loop (``GET /metrics``);
* ``listen.py``: the ``host:port`` syntax of ``listen`` (pure).

The hot paths only update plain numbers (``edge.core.stats``, ``DeviceHealth``, the server's and
recorder's counters); nothing here runs until a scrape. The same figures are published in the
OPC UA Diagnostics folder. Metric names and meanings: docs/metrics.md.
"""
