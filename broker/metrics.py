"""Prometheus metrics of every mirrorhub process, in prometheus-client's default registry.

The counting sits where every request passes, not in each handler: a caller's
:meth:`broker.client.Bus.request` counts and times its calls (``mirrorhub_bus_requests_total``,
``mirrorhub_bus_request_seconds``), the service runner the requests it answers
(``mirrorhub_handled_total``, ``mirrorhub_handler_seconds``) and the bridge's middleware its
HTTP requests (bridge/metrics.py). Outcomes are ``ok``, a typed error's code (``invalid``,
``login_failed``, ...), ``timeout``, ``unavailable``, ``cancelled`` (the caller gave up) or,
for a request a service dropped unanswered, ``expired``. Labels hold only declared names
(operation templates, route paths, services), never values a client chose, so a series count
stays bounded.

Values that are states rather than events (gallery size, mirrors online, queue depths) are
:class:`Sampled`: each part that holds one registers a function that reads it, for as long as
it runs, and a scrape reads them all then. Several services in one process (``mirrorhub up``,
the tests) each add their own labelled sample.

One process, one registry: ``GET /metrics`` on the bridge shows everything in its process (all
of it under ``mirrorhub up``); :func:`serve_metrics` serves the same from a process that runs one
role (``MIRRORHUB_METRICS_PORT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from schemas.errors import BusUnavailable, RequestTimeout, ServiceError

BUS_REQUESTS = Counter(
    "mirrorhub_bus_requests", "Requests a process sent over MQTT, by operation and outcome.",
    ["operation", "outcome"],
)
BUS_SECONDS = Histogram(
    "mirrorhub_bus_request_seconds", "Seconds from sending a request to its reply.",
    ["operation"],
)
HANDLED = Counter(
    "mirrorhub_handled", "Requests a service answered (or dropped), by operation and outcome.",
    ["service", "operation", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "mirrorhub_handler_seconds", "Seconds a service took to answer a request.",
    ["service", "operation"],
)
HTTP_REQUESTS = Counter(
    "mirrorhub_http_requests", "HTTP requests the bridge answered, by route and status.",
    ["method", "endpoint", "status"],
)
HTTP_SECONDS = Histogram(
    "mirrorhub_http_request_seconds", "Seconds the bridge took to answer an HTTP request.",
    ["method", "endpoint"],
)

FRAMES_ANALYSED = Counter("mirrorhub_frames_analysed", "Camera frames a vision worker analysed.")
FRAMES_DROPPED = Counter(
    "mirrorhub_frames_dropped",
    "Camera frames replaced by a newer one of the same mirror before they were analysed.",
)

FRAMES_SHED = Counter(
    "mirrorhub_broker_frames_shed",
    "Camera frames the embedded broker shed while behind (broker/shedding.py), by reason.",
    ["reason"],
)

M = TypeVar("M", bound=MetricWrapperBase)


@functools.cache
def _child(metric: MetricWrapperBase, values: tuple[str, ...]) -> MetricWrapperBase:
    return metric.labels(*values)


def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, looked up once per label values: prometheus-client's lookup
    (a lock, every value checked) costs more than the count itself, on every request and
    message. Labels are declared names, so the values met stay few."""
    return cast(M, _child(metric, values))


class Sampled(Collector):
    """A gauge read at scrape time from the functions registered with :meth:`sampling`."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self._sources: dict[tuple[str, ...], Callable[[], float]] = {}
        self._lock = threading.Lock()  # start_http_server scrapes from a thread of its own
        REGISTRY.register(self)

    @contextlib.contextmanager
    def sampling(self, read: Callable[[], float], *values: str) -> Iterator[None]:
        """Report ``read()`` under the label ``values`` until the context exits."""
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {values}")
        with self._lock:
            self._sources[values] = read
        try:
            yield
        finally:
            with self._lock:
                if self._sources.get(values) is read:
                    del self._sources[values]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:
            sources = list(self._sources.items())
        for values, read in sources:
            family.add_metric(values, float(read()))
        yield family


GALLERY = Sampled("mirrorhub_gallery_embeddings",
                  "Embeddings in a vision worker's in-memory gallery.", ("worker",))
MIRRORS_ONLINE = Sampled("mirrorhub_mirrors_online",
                         "Mirrors whose retained status says online, as messaging heard it.",
                         ("instance",))
QUEUE_DEPTH = Sampled(
    "mirrorhub_queue_depth",
    "Work waiting or running: a client's message callbacks in flight (queue=bus), a vision "
    "worker's mirrors with a frame waiting (queue=frames).", ("queue", "client"),
)


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label of a finished request: ``ok``, or a typed error's code, or what
    happened on the way (``timeout``, ``unavailable``)."""
    if error is None:
        return "ok"
    if isinstance(error, ServiceError):
        return str(error.code)
    if isinstance(error, RequestTimeout):
        return "timeout"
    if isinstance(error, BusUnavailable):
        return "unavailable"
    return "error"


@contextlib.contextmanager
def counted_call(operation: str) -> Iterator[None]:
    """Count and time one request sent to ``operation`` (its template: parameters would grow
    the series), by how it ended; a call given up on (cancelled) is ``cancelled``."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except Exception as exc:
        outcome = outcome_of(exc)
        raise
    finally:
        labelled(BUS_REQUESTS, operation, outcome).inc()
        labelled(BUS_SECONDS, operation).observe(time.perf_counter() - started)


@contextlib.contextmanager
def serve_metrics(host: str, port: int | None) -> Iterator[int | None]:
    """Serve ``/metrics`` on ``host:port`` in a thread of this process until the context exits
    (nothing when ``port`` is None); yields the port it listens on (``0`` picks a free one)."""
    if port is None:
        yield None
        return
    server, thread = start_http_server(port, addr=host)
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
