"""MQTT topic layout of the gateway, and the checks that keep device ids to one topic level.

With the default prefix ``sense/v1`` (``v1`` is the payload schema version)::

    sense/v1/<device_id>/raw/<sensor>        in:  sensor samples (one or a batch per message)
    sense/v1/<device_id>/prediction          out: one prediction per window (QoS 1)
    sense/v1/<device_id>/error               out: refused input of that device
    sense/v1/gateway/<gateway_id>/status     out: retained online/offline + counters (last will)
    sense/v1/gateway/<gateway_id>/error      out: refused input that names no valid device
    sense/v1/gateway/<gateway_id>/model      in:  over-the-air model updates
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Device and gateway ids: one topic level, no wildcards, no control characters, no '$'.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
#: Reserved first level under the prefix (the gateways' own topics).
GATEWAY_LEVEL = "gateway"


def check_id(value: str, what: str = "device id") -> str:
    """Return `value` if it is a valid id, else raise ValueError naming what was expected."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value) or value == GATEWAY_LEVEL:
        raise ValueError(f"{what} expected 1-64 characters [A-Za-z0-9_.:-] starting with a letter "
                         f"or digit (not '{GATEWAY_LEVEL}'). Received: {value!r:.80}")
    return value


def check_prefix(prefix: str) -> str:
    """A topic prefix: levels separated by '/', no wildcards, no empty level."""
    levels = prefix.split("/")
    if not prefix or any(not level or "+" in level or "#" in level or "\0" in level
                         for level in levels):
        raise ValueError(f"topic prefix expected non-empty levels without wildcards, e.g. "
                         f"'sense/v1'. Received: {prefix!r}")
    return prefix


#: First topic levels of every topic (``v1``: the payload schema version).
DEFAULT_PREFIX = "sense/v1"
#: The gateway id when none is given.
DEFAULT_GATEWAY_ID = "gw1"


@dataclass(frozen=True)
class Topics:
    """Every topic one gateway uses, derived from a prefix and the gateway id."""

    prefix: str = DEFAULT_PREFIX
    gateway_id: str = DEFAULT_GATEWAY_ID

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_id(self.gateway_id, "gateway id")

    @property
    def raw_subscription(self) -> str:
        return f"{self.prefix}/+/raw/+"

    def raw(self, device_id: str, sensor: str) -> str:
        return f"{self.prefix}/{device_id}/raw/{sensor}"

    def prediction(self, device_id: str) -> str:
        return f"{self.prefix}/{device_id}/prediction"

    def device_error(self, device_id: str) -> str:
        return f"{self.prefix}/{device_id}/error"

    @property
    def status(self) -> str:
        return f"{self.prefix}/{GATEWAY_LEVEL}/{self.gateway_id}/status"

    @property
    def gateway_error(self) -> str:
        return f"{self.prefix}/{GATEWAY_LEVEL}/{self.gateway_id}/error"

    @property
    def model(self) -> str:
        return f"{self.prefix}/{GATEWAY_LEVEL}/{self.gateway_id}/model"

    def parse_raw(self, topic: str) -> tuple[str, str]:
        """``<prefix>/<device>/raw/<sensor>`` -> (device, sensor), both unchecked.

        Raises:
            ValueError: a topic of another shape.
        """
        head = self.prefix + "/"
        rest = topic[len(head):].split("/") if topic.startswith(head) else []
        if len(rest) != 3 or rest[1] != "raw":
            raise ValueError(f"topic expected '{self.prefix}/<device>/raw/<sensor>'. "
                             f"Received: {topic!r:.120}")
        return rest[0], rest[2]
