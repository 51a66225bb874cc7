"""Over-the-air model updates: verified, swapped between windows, refused when bad."""

from __future__ import annotations

import base64
import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

from deepsense.data.features import FeatureConfig
from edge.runtime import load_bundle
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.messages import encode_samples
from gateway.ota import OtaPolicy, UpdateError, fetch_bundle, load_update, read_announcement
from gateway.service import Gateway


def _announce(data: bytes, **extra) -> bytes:
    return json.dumps({"sha256": hashlib.sha256(data).hexdigest(),
                       "data_b64": base64.b64encode(data).decode(), **extra}).encode()


@pytest.mark.parametrize("payload, match", [
    (b"nope", "not JSON"),
    (b'{"sha256": "abc", "path": "/x.zip"}', "64 hex digits"),
    (json.dumps({"sha256": "0" * 64}).encode(), "exactly one of"),
    (json.dumps({"sha256": "0" * 64, "path": "/a", "url": "http://b"}).encode(), "exactly one"),
])
def test_ota_announcement_is_checked(payload, match):
    with pytest.raises(UpdateError, match=match):
        read_announcement(payload)


def test_ota_fetch_checks_sha256_and_size(tmp_path):
    data = b"PK\x03\x04 not really a zip"
    announcement = read_announcement(_announce(data))
    policy = OtaPolicy(max_bytes=1000, dirs=(tmp_path.resolve(),))
    assert fetch_bundle(announcement, tmp_path, policy).read_bytes() == data
    with pytest.raises(UpdateError, match="more than 10 bytes"):
        fetch_bundle(announcement, tmp_path, OtaPolicy(max_bytes=10))
    wrong = {**announcement, "sha256": "0" * 64}
    with pytest.raises(UpdateError, match="does not match the announced") as info:
        fetch_bundle(wrong, tmp_path, policy)
    assert announcement["sha256"] not in str(info.value)     # no hash of what was fetched
    source = tmp_path / "b.zip"
    source.write_bytes(data)
    by_path = read_announcement(json.dumps({"sha256": announcement["sha256"],
                                            "path": str(source)}).encode())
    assert fetch_bundle(by_path, tmp_path / "out", policy).read_bytes() == data


@pytest.mark.slow
def test_ota_load_update_refuses_corrupt_and_incompatible(bundle, tmp_path):
    current = load_bundle(bundle)
    corrupt = tmp_path / "corrupt.zip"
    raw = bytearray(bundle.with_suffix(".zip").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(UpdateError, match="bundle refused"):
        load_update(corrupt, current)
    other = SimpleNamespace(features=FeatureConfig(interval_s=0.5))
    with pytest.raises(UpdateError, match="expects features"):
        load_update(bundle.with_suffix(".zip"), other)
    assert load_update(bundle.with_suffix(".zip"), current).bundle_sha256 == current.bundle_sha256


@pytest.mark.broker
@pytest.mark.slow
def test_ota_update_swaps_model_and_keeps_old_on_bad_bundle(broker, bundle, bundle_v2, prefix,
                                                            collect):
    collector = collect(broker.url, f"{prefix}/#")
    config = GatewayConfig(broker=broker.url, topic_prefix=prefix, gateway_id="gw1",
                           allow_unsigned_updates=True)
    model_topic = f"{prefix}/gateway/gw1/model"
    with Gateway(config, load_bundle(bundle)) as gateway, connect_client(broker.url) as client:
        garbage = b"PK\x03\x04 corrupt"
        client.publish(model_topic, _announce(garbage), qos=1).wait_for_publish(5)
        assert collector.wait_for(lambda c: any(e["reason"] == "model_update_refused"
                                                for e in c.json("/error")))
        assert gateway.model.version == "1"

        client.publish(model_topic, _announce(bundle_v2.with_suffix(".zip").read_bytes()),
                       qos=1).wait_for_publish(5)
        assert collector.wait_for(lambda c: c.json("/status")[-1]["model"]["version"] == "2")
        v2 = load_bundle(bundle_v2)
        assert collector.json("/status")[-1]["model"]["sha256"] == v2.bundle_sha256

        t = np.arange(0, 5.5, 0.005)
        values = np.random.default_rng(0).standard_normal((t.size, 3))
        for sensor in ("acc", "gyro"):
            client.publish(f"{prefix}/d1/raw/{sensor}", encode_samples(t, values),
                           qos=1).wait_for_publish(5)
        assert collector.wait_for(lambda c: len(c.json("/prediction")) == 1)
        assert collector.json("/prediction")[0]["model"]["version"] == "2"
    assert gateway.counters["model_update_refused"] == 1
    assert gateway.counters["model_updates"] == 1
