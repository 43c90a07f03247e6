"""``GatewayCollector``: one prometheus ``Collector`` over the sources registered by the components.

A source is a callable returning metric families (``prometheus_client.core.*MetricFamily``); it is
called at scrape time, on the event loop, and reads the plain counters its component keeps. A
component adds itself with one call, ``collector.register(name, source)``. A source that raises is
skipped for that scrape and logged once (``metrics_source_failed``) until it works again, so one
broken component never empties the whole scrape; ``edgetwin_metrics_source_errors_total`` counts
the failures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import structlog
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = structlog.get_logger("edge.metrics")

Source = Callable[[], Iterable[Metric]]


class GatewayCollector(Collector):
    """The metric families of every registered source, in registration order."""

    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}
        self._errors: dict[str, int] = {}
        self._failing: set[str] = set()

    def register(self, name: str, source: Source) -> None:
        """Add *source* under *name* (e.g. ``"devices"``, ``"mqtt"``); a name is registered once."""
        if name in self._sources:
            raise ValueError(f"metrics source {name!r} is registered already")
        self._sources[name] = source
        self._errors[name] = 0

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    def collect(self) -> Iterator[Metric]:
        for name, source in self._sources.items():
            try:
                families = list(source())
            except Exception as exc:
                self._errors[name] += 1
                if name not in self._failing:
                    self._failing.add(name)
                    log.error("metrics_source_failed", source=name, error=repr(exc))
                continue
            if name in self._failing:
                self._failing.discard(name)
                log.info("metrics_source_recovered", source=name)
            yield from families
        errors = CounterMetricFamily("edgetwin_metrics_source_errors", "scrapes in which a metrics source failed (and was left out)", labels=["source"])
        for name, n in self._errors.items():
            errors.add_metric([name], n)
        yield errors
