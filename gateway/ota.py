"""Over-the-air model updates: fetch an announced bundle, verify it, load it, check it fits.

An announcement on ``<prefix>/gateway/<gateway_id>/model`` is JSON naming a zipped bundle
and the sha256 of the zip's bytes, with the bytes inline (base64) or a path/URL::

    {"sha256": "9f2c...", "data_b64": "UEsDB..."}
    {"sha256": "9f2c...", "path": "/srv/bundles/har-v2.zip"}
    {"sha256": "9f2c...", "url": "https://models.example.org/har-v2.zip"}

The new model must read the same features as the running one (the device streams are cut
for those); it must also pass `load_bundle`'s own checks and predict finite outputs on a
random window. Anything else is refused and the running model stays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import urllib.request
from pathlib import Path

import numpy as np

from edge.runtime import EdgeModel, load_bundle


class UpdateError(ValueError):
    """An announced bundle that was refused; the message says why."""


def read_announcement(payload: bytes) -> dict:
    """Parse and check an announcement; returns it with ``sha256`` lower-cased."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise UpdateError("model announcement is not JSON") from None
    if not isinstance(data, dict):
        raise UpdateError("model announcement expected a JSON object")
    sha = data.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef"
                                                          for c in sha.lower()):
        raise UpdateError("field 'sha256' expected 64 hex digits (the sha256 of the .zip)")
    sources = [k for k in ("data_b64", "path", "url") if k in data]
    if len(sources) != 1 or not isinstance(data[sources[0]], str):
        raise UpdateError("model announcement expected exactly one of 'data_b64', 'path', "
                          "'url' (a string)")
    return {**data, "sha256": sha.lower()}


def fetch_bundle(announcement: dict, out_dir: str | Path, max_bytes: int,
                 timeout_s: float = 30.0) -> Path:
    """Get the announced zip, check size and sha256, store it as ``<out_dir>/<sha256>.zip``."""
    if "data_b64" in announcement:
        try:
            data = base64.b64decode(announcement["data_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise UpdateError("field 'data_b64' is not valid base64") from None
    elif "path" in announcement:
        path = Path(announcement["path"])
        if not path.is_file() or path.stat().st_size > max_bytes:
            raise UpdateError(f"bundle path {str(path)!r} is not a file of at most "
                              f"{max_bytes} bytes")
        data = path.read_bytes()
    else:
        url = announcement["url"]
        if not url.startswith(("https://", "http://", "file://")):
            raise UpdateError("field 'url' expected an http(s):// or file:// URL")
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                data = response.read(max_bytes + 1)
        except OSError as exc:
            raise UpdateError(f"cannot download the bundle: {exc}") from None
    if len(data) > max_bytes:
        raise UpdateError(f"bundle larger than {max_bytes} bytes")
    actual = hashlib.sha256(data).hexdigest()
    if actual != announcement["sha256"]:
        raise UpdateError(f"bundle sha256 {actual} does not match the announced "
                          f"{announcement['sha256']}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{actual}.zip"
    target.write_bytes(data)
    return target


def load_update(path: Path, current: EdgeModel) -> EdgeModel:
    """Load a fetched bundle and check that it can replace `current` between windows."""
    try:
        model = load_bundle(path)
    except ValueError as exc:          # BundleError is a ValueError
        raise UpdateError(f"bundle refused: {exc}") from None
    if model.features != current.features:
        raise UpdateError(f"bundle expects features {model.features.to_dict()}, the running "
                          f"model {current.features.to_dict()}; the streams are cut for those")
    try:
        window = np.random.default_rng(0).standard_normal((1, *model.input_shape))
        probe = model.predict(window.astype(np.float32))
        model.summarize(probe)
    except ValueError as exc:
        raise UpdateError(f"bundle fails a test prediction: {exc}") from None
    return model
