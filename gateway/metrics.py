"""Prometheus metrics of a running gateway (`deepsense serve --metrics-port PORT`).

The gateway already counts everything it does (`Gateway.counters`, the status payload);
`GatewayCollector` reads those counters at scrape time, so every fact has one home and
nothing is counted twice. The only metric observed as it happens is the latency histogram,
fed by the gateway's `on_latency` hook with the same value it publishes as `latency_ms`.

Needs the optional `prometheus-client` (``pip install 'deepsense-iot[metrics]'``); the base
install (NumPy + paho-mqtt, for 32-bit boards) does not.

```python
with serve_metrics(gateway, port=9108) as url:     # http://127.0.0.1:9108/metrics
    ...
```
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from deepsense.errors import require

if TYPE_CHECKING:
    from gateway.service import Gateway

#: Refusal counters of the gateway are named ``refused_<reason>``; ``queue_full`` drops too.
REFUSED_PREFIX = "refused_"
#: Counter name in `Gateway.counters` -> (metric name without the ``deepsense_gateway_``
#: prefix and ``_total`` suffix, help text). Any other counter is exported as
#: ``deepsense_gateway_events_total{event="<name>"}``, so a new counter is never lost.
COUNTERS = {
    "messages": ("messages", "Sensor messages taken from the queue by the worker."),
    "samples": ("samples", "Sensor samples accepted into device streams."),
    "predictions": ("predictions", "Predictions made (one per window)."),
    "predict_failed": ("predict_failures", "Windows the model failed on."),
    "connects": ("connects", "Successful connections to the broker."),
    "disconnects": ("disconnects", "Unexpected disconnections from the broker."),
    "connect_refused": ("connect_refusals", "Connections the broker refused."),
    "model_updates": ("model_updates", "Over-the-air model updates swapped in."),
    "model_update_refused": ("model_update_refusals", "Over-the-air model updates refused."),
}
#: Latency buckets (seconds): a window's prediction is normally out within 1-100 ms.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0)


class GatewayCollector:
    """A prometheus-client collector that reads a gateway's counters and gauges at scrape time.

    Args:
        gateway: the running gateway.
    """

    def __init__(self, gateway: "Gateway"):
        self.gateway = gateway

    def describe(self) -> list:
        """Nothing up front: the refusal reasons are only known at scrape time."""
        return []

    def collect(self) -> Iterator:
        """Yield one family per metric (prometheus-client calls this on every scrape)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        gw = self.gateway
        counters = gw.counters_snapshot()
        refusals = CounterMetricFamily(
            "deepsense_gateway_refusals", "Input refused, by reason (messages or samples, as "
            "counted on the error topic); queue_full: messages dropped on a full queue.",
            labels=["reason"])
        events = CounterMetricFamily("deepsense_gateway_events",
                                     "Other gateway events, by counter name.", labels=["event"])
        for name, value in sorted(counters.items()):
            if name.startswith(REFUSED_PREFIX):
                refusals.add_metric([name[len(REFUSED_PREFIX):]], value)
            elif name == "queue_full":
                refusals.add_metric(["queue_full"], value)
            elif name not in COUNTERS:
                events.add_metric([name], value)
        for name, (metric, text) in COUNTERS.items():
            yield CounterMetricFamily(f"deepsense_gateway_{metric}", text,
                                      value=counters.get(name, 0))
        yield refusals
        yield events
        yield CounterMetricFamily("deepsense_gateway_predictions_dropped",
                                  "Predictions dropped unsent because max_pending was reached.",
                                  value=gw.outbox.n_dropped)
        for metric, text, value in (
                ("queue_depth", "Sensor messages waiting for the worker.", gw.inbox.qsize()),
                ("pending_predictions", "Predictions not yet acknowledged by the broker.",
                 len(gw.outbox)),
                ("devices", "Devices with a live stream.", len(gw.devices)),
                ("connected", "1 while connected to the broker.", int(gw.connected))):
            yield GaugeMetricFamily(f"deepsense_gateway_{metric}", text, value=value)
        model = gw.model
        yield InfoMetricFamily("deepsense_gateway_model", "The model being served.", value={
            "name": model.name, "version": str(model.version), "sha256": model.bundle_sha256,
            "task": model.task, "gateway_id": gw.config.gateway_id})


@contextlib.contextmanager
def serve_metrics(gateway: "Gateway", port: int, host: str = "0.0.0.0") -> Iterator[str]:
    """Serve the gateway's metrics on ``http://host:port/metrics`` for the ``with`` block.

    Args:
        gateway: the gateway (its `on_latency` hook is taken for the latency histogram).
        port: TCP port; 0 picks a free one.
        host: address to listen on (all interfaces by default: Prometheus scrapes from afar).

    Yields:
        The URL of the metrics page.

    Raises:
        MissingExtraError: prometheus-client is not installed (the 'metrics' extra).
        OSError: the port cannot be bound.
    """
    require("prometheus_client", "metrics")
    from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, start_http_server

    registry = CollectorRegistry()
    registry.register(GatewayCollector(gateway))
    ProcessCollector(registry=registry)
    latency = Histogram("deepsense_gateway_inference_latency_seconds",
                        "From receiving the message that completed a window to handing its "
                        "prediction to the MQTT client (the prediction's latency_ms).",
                        buckets=LATENCY_BUCKETS_S, registry=registry)
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise OSError(f"metrics cannot listen on {host}:{port}: {exc.strerror}") from None
    gateway.on_latency = latency.observe
    try:
        yield f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:" \
              f"{server.server_address[1]}/metrics"
    finally:
        gateway.on_latency = None
        server.shutdown()
        server.server_close()
        thread.join(5)
