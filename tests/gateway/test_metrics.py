"""Prometheus metrics of a live gateway, scraped over HTTP during a replay on a real broker."""

from __future__ import annotations

import sys
import threading
import urllib.request

import pytest

from deepsense.cli import main
from edge.runtime import load_bundle
from gateway.client import make_client
from gateway.config import GatewayConfig
from gateway.replay import plan_messages, replay
from gateway.service import Gateway
from gateway.topics import Topics


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the metrics page: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.broker
@pytest.mark.slow
def test_metrics_scraped_during_a_replay(broker, bundle, held_out_recording, prefix):
    pytest.importorskip("prometheus_client", reason="the 'metrics' extra is not installed")
    from gateway.metrics import serve_metrics

    gateway = Gateway(GatewayConfig(broker=broker.url, topic_prefix=prefix, gateway_id="gw1"),
                      load_bundle(bundle))
    client, host, port = make_client(broker.url)
    client.connect(host, port)
    client.loop_start()
    messages = plan_messages([held_out_recording], Topics(prefix), device_id="phone1")
    with serve_metrics(gateway, 0, "127.0.0.1") as url:
        gateway.start()
        sender = threading.Thread(target=replay, args=(messages, client), kwargs={"speed": 10})
        sender.start()
        during = []
        while sender.is_alive():
            during.append(scrape(url))
            sender.join(0.3)
        client.publish(f"{prefix}/phone1/raw/acc", b"{oops", qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        assert gateway.stop()
        after = scrape(url)

    n = gateway.counters["predictions"]
    assert n > 10
    # Scraped while the replay ran: the device was live and predictions were coming in.
    assert max(s[("deepsense_gateway_devices", ())] for s in during) == 1
    assert 0 < min(s[("deepsense_gateway_predictions_total", ())] for s in during[-3:]) < n
    assert after[("deepsense_gateway_predictions_total", ())] == n
    assert after[("deepsense_gateway_messages_total", ())] == len(messages) + 1
    assert after[("deepsense_gateway_inference_latency_seconds_count", ())] == n
    assert 0 < after[("deepsense_gateway_inference_latency_seconds_sum", ())] < n * 10
    assert after[("deepsense_gateway_refusals_total", (("reason", "malformed_json"),))] == 1
    assert after[("deepsense_gateway_pending_predictions", ())] == 0
    assert after[("deepsense_gateway_queue_depth", ())] == 0
    model = gateway.model
    labels = (("gateway_id", "gw1"), ("name", "har"), ("sha256", model.bundle_sha256),
              ("task", model.task), ("version", "1"))
    assert after[("deepsense_gateway_model_info", labels)] == 1
    assert ("process_cpu_seconds_total", ()) in after


def test_metrics_port_without_the_extra_fails_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)   # as if not installed
    code = main(["serve", "--bundle", str(tmp_path / "none"), "--metrics-port", "9108"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "install the 'metrics' extra" in err, err
