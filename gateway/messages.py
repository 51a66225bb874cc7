"""Payloads on the wire: parse sensor samples, encode predictions, errors and status.

Every payload is UTF-8 JSON. A sensor message (topic ``<prefix>/<device>/raw/<sensor>``)
carries one sample or a batch; timestamps are seconds (float), acc in m/s^2, gyro in rad/s::

    {"t_s": 1424696633.908, "x": -0.51, "y": 9.79, "z": 0.13}
    {"schema": 1, "samples": [[1424696633.908, -0.51, 9.79, 0.13], [1424696633.918, ...]]}

Anything else is refused with a `PayloadError` whose `reason` is a short code that the
gateway counts and publishes on the error topic.

What the gateway publishes: a prediction per window (`encode_prediction`: device, window id,
index, start/end in device seconds, valid intervals, the `edge.predictions` summary, the raw
outputs, the model's name/version/sha256, gateway id, latency in ms), its retained status
(`encode_status`: state, model, devices, queue depth, pending and dropped predictions,
counters, wall-clock time in seconds) and refusals (`encode_error`).
"""

from __future__ import annotations

import json
import math
from itertools import chain
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from edge.runtime import EdgeModel
    from gateway.stream import Window

SCHEMA = 1
AXES = ("x", "y", "z")
#: Default limits: bytes per message and samples per batch (10 s of 1 kHz).
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_SAMPLES = 10_000
#: Largest |timestamp| in seconds (1e10 s is year 2286 as a Unix time): larger values are
#: milliseconds or garbage, and +-1e308 would overflow the window arithmetic.
MAX_ABS_T_S = 1e10
#: Largest |sensor value| (m/s^2, rad/s, ...): real IMUs stay under 1e4; 1e38 overflows float32.
MAX_ABS_VALUE = 1e6


class PayloadError(ValueError):
    """A message the gateway refuses.

    Attributes:
        reason: short code, e.g. "malformed_json", "missing_field", "non_finite", "oversize".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _refuse_constant(name: str) -> float:
    raise PayloadError("non_finite", f"payload holds {name}; expected finite numbers")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _number(value: Any, field: str) -> float:
    if type(value) not in (int, float):  # bool is an int subclass: refused here
        raise PayloadError("bad_type", f"field '{field}' expected a number. "
                           f"Received: {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise PayloadError("non_finite", f"field '{field}' expected a finite number. "
                           f"Received: {value!r:.40}")
    return number


def parse_samples(payload: bytes, n_axes: int = 3, *, max_bytes: int = MAX_PAYLOAD_BYTES,
                  max_samples: int = MAX_BATCH_SAMPLES, max_abs_t_s: float = MAX_ABS_T_S,
                  max_abs_value: float = MAX_ABS_VALUE) -> tuple[np.ndarray, np.ndarray]:
    """One sensor message -> samples in message order.

    Args:
        payload: the raw MQTT payload.
        n_axes: values per sample (3: x, y, z).
        max_bytes: larger payloads are refused before parsing.
        max_samples: larger batches are refused.
        max_abs_t_s: timestamps (seconds) beyond +-this are refused ("out_of_range").
        max_abs_value: sensor values beyond +-this are refused ("out_of_range").

    Returns:
        t_s: (n,) float64 seconds; values: (n, n_axes) float64. Order is not checked here.

    Raises:
        PayloadError: oversize, not JSON, wrong schema, missing or ill-typed field, NaN/Inf,
            a timestamp or value out of range.
    """
    table = _parse(payload, n_axes, max_bytes, max_samples)
    peak_t, *peak_v = np.abs(table).max(axis=0).tolist()      # NaN/Inf fail both tests
    if not (peak_t <= max_abs_t_s and max(peak_v, default=0.0) <= max_abs_value):
        _refuse_values(table, max_abs_t_s, max_abs_value)
    return table[:, 0], table[:, 1:]


def _refuse_values(table: np.ndarray, max_abs_t_s: float, max_abs_value: float) -> None:
    """Raise the `PayloadError` naming the first non-finite or out-of-range value of the
    (n, 1 + n_axes) `table` (rows [t_s, values...])."""
    for i, row in enumerate(table.tolist()):
        for value in row:
            _number(value, f"samples[{i}]")          # NaN/Inf: "non_finite"
    t_s, values = np.abs(table[:, 0]), np.abs(table[:, 1:])
    if t_s.max() > max_abs_t_s:
        i = int(np.argmax(t_s))
        raise PayloadError("out_of_range", f"sample {i}: t_s expected seconds within "
                           f"+-{max_abs_t_s:g}. Received: {table[i, 0]:.6g}")
    i = int(np.argmax(values.max(axis=1)))
    raise PayloadError("out_of_range", f"sample {i}: values expected within "
                       f"+-{max_abs_value:g}. Received: {values[i].max():.6g}")


def _parse(payload: bytes, n_axes: int, max_bytes: int, max_samples: int) -> np.ndarray:
    """The payload's samples as an (n, 1 + n_axes) float64 table of rows [t_s, values...]."""
    if len(payload) > max_bytes:
        raise PayloadError("oversize", f"payload of {len(payload)} bytes; expected at most "
                           f"{max_bytes}")
    try:
        data = _DECODER.decode(payload.decode("utf-8"))
    except PayloadError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError("malformed_json", f"payload is not UTF-8 JSON: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise PayloadError("bad_type", f"payload expected a JSON object. "
                           f"Received: {type(data).__name__}")
    if "schema" in data and data["schema"] != SCHEMA:
        raise PayloadError("schema", f"field 'schema' expected {SCHEMA}. "
                           f"Received: {data['schema']!r:.40}")
    if "samples" in data:
        return _parse_batch(data["samples"], n_axes, max_samples)
    if n_axes > len(AXES):
        raise PayloadError("missing_field", f"field 'samples' expected for {n_axes}-axis sensors")
    row = []
    for field in ("t_s", *AXES[:n_axes]):
        if field not in data:
            raise PayloadError("missing_field", f"field '{field}' missing; expected "
                               f"{{'t_s', {', '.join(repr(a) for a in AXES[:n_axes])}}} "
                               "or {'samples': [[t_s, x, y, z], ...]}")
        row.append(_number(data[field], field))
    return np.array([row])


def _parse_batch(samples: Any, n_axes: int, max_samples: int) -> np.ndarray:
    if type(samples) is not list or not samples:
        raise PayloadError("bad_type", "field 'samples' expected a non-empty list of "
                           "[t_s, x, y, z] rows")
    if len(samples) > max_samples:
        raise PayloadError("oversize", f"field 'samples' holds {len(samples)} rows; expected at "
                           f"most {max_samples}")
    width = n_axes + 1
    for i, row in enumerate(samples):
        if type(row) is not list or len(row) != width:
            raise PayloadError("bad_type", f"field 'samples[{i}]' expected a list of {width} "
                               f"numbers [t_s, {', '.join(AXES[:n_axes])}]")
    if set(map(type, chain.from_iterable(samples))) <= {float, int}:   # fast path (C loops)
        try:
            return np.array(samples, dtype=np.float64)
        except OverflowError:
            pass
    for i, row in enumerate(samples):       # slow path: name the first bad value
        for value in row:
            _number(value, f"samples[{i}]")
    raise AssertionError("unreachable: every value is a finite number")


def window_id(device_id: str, start_s: float) -> str:
    """A window's id in prediction payloads: ``<device_id>@<start, seconds, 3 decimals>``."""
    return f"{device_id}@{start_s:.3f}"


def encode_json(data: dict) -> bytes:
    """Compact UTF-8 JSON; NaN/Inf are never written (they are not JSON)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def encode_samples(t_s: np.ndarray, values: np.ndarray) -> bytes:
    """(n,) seconds and (n, n_axes) values -> a batch message (what `replay` publishes)."""
    rows = np.column_stack([np.asarray(t_s, dtype=np.float64), values]).tolist()
    return encode_json({"schema": SCHEMA, "samples": rows})


def encode_prediction(window: Window, output: np.ndarray, summary: dict, model: EdgeModel,
                      gateway_id: str, latency_ms: float) -> bytes:
    """The prediction-topic payload of one window.

    Args:
        window: the cut window. output: its (width,) model outputs. summary: its
            `EdgeModel.summarize` dict (label and probabilities, or mean/std).
        latency_ms: from the arrival of the window's last message to now.
    """
    return encode_json({
        "schema": SCHEMA, "device_id": window.device_id,
        "window_id": window_id(window.device_id, window.start_s), "window_index": window.index,
        "window_start_s": window.start_s, "window_end_s": window.end_s,
        "valid_intervals": int(window.mask.sum()), **summary,
        "outputs": [float(v) for v in output],
        "model": {"name": model.name, "version": model.version, "sha256": model.bundle_sha256},
        "gateway_id": gateway_id, "latency_ms": round(latency_ms, 3)})


def encode_status(state: str, gateway_id: str, model: EdgeModel, *, devices: int,
                  queue_depth: int, pending_predictions: int, predictions_dropped: int,
                  counters: Mapping[str, int], time_s: float) -> bytes:
    """The retained status payload: ``state`` "online" or "offline", the model served, how
    many devices are tracked, messages queued, predictions not yet acknowledged or dropped,
    the gateway's counters and the wall-clock `time_s` (seconds since the epoch)."""
    return encode_json({
        "schema": SCHEMA, "gateway_id": gateway_id, "state": state,
        "model": {"name": model.name, "version": model.version,
                  "sha256": model.bundle_sha256, "task": model.task},
        "devices": devices, "queue_depth": queue_depth,
        "pending_predictions": pending_predictions, "predictions_dropped": predictions_dropped,
        "counters": dict(counters), "time_s": time_s})


def encode_error(device_id: str | None, topic: str, reason: str, message: str,
                 count: int = 1, code: str | None = None) -> bytes:
    """The error-topic payload: which device, which topic, why, how many samples or messages;
    `code` refines `reason` (e.g. reason "model_update_refused", code "unsigned")."""
    data = {"schema": SCHEMA, "device_id": device_id, "topic": topic[:200], "reason": reason,
            "message": message[:300], "count": count}
    if code is not None:
        data["code"] = code
    return encode_json(data)
