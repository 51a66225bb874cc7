"""The fallback broker (amqtt, pure Python) carries the gateway's traffic too."""

from __future__ import annotations

import numpy as np
import pytest

from edge.runtime import load_bundle
from gateway.broker import EmbeddedBroker
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.messages import encode_samples
from gateway.service import Gateway

pytest.importorskip("amqtt", reason="amqtt not installed (pip install '.[demo]')")


@pytest.mark.slow
def test_embedded_broker_serves_a_prediction(bundle, prefix, collect):
    with EmbeddedBroker() as broker:
        collector = collect(broker.url, f"{prefix}/+/prediction")
        config = GatewayConfig(broker=broker.url, topic_prefix=prefix)
        with Gateway(config, load_bundle(bundle)) as gateway, \
                connect_client(broker.url) as client:
            t = np.arange(0, 5.5, 0.005)
            values = np.random.default_rng(0).standard_normal((t.size, 3))
            for sensor in ("acc", "gyro"):
                client.publish(f"{prefix}/d1/raw/{sensor}", encode_samples(t, values),
                               qos=1).wait_for_publish(5)
            assert collector.wait_for(lambda c: len(c.json("/prediction")) == 1)
        assert gateway.stop()
        collector.close()
