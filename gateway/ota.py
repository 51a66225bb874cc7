"""Over-the-air model updates: fetch an announced bundle, verify it, load it, check it fits.

An announcement on ``<prefix>/gateway/<gateway_id>/model`` is JSON naming a zipped bundle,
the sha256 of the zip's bytes and its Ed25519 signature (`edge.signing`), with the bytes
inline (base64) or a path/URL::

    {"sha256": "9f2c...", "signature": "base64...", "data_b64": "UEsDB..."}
    {"sha256": "9f2c...", "signature": "base64...", "path": "/srv/bundles/har-v2.zip"}
    {"sha256": "9f2c...", "signature": "base64...", "url": "https://models.example.org/v2.zip"}

Who may replace the model is the operator's choice, made in `OtaPolicy`: a bundle is loaded
only if a trusted key signed it (unless the operator turned that off), `path` and
``file://`` only inside the directories the operator named, `url` only ``https://`` on the
hosts the operator named (no redirects). Every size is checked before the bytes are decoded
or decompressed, the download has a total deadline, and the new model must read the same
features as the running one, pass `read_bundle`'s checks, fit the activation budget at the
largest batch the gateway runs and predict finite outputs at that batch.

A refusal is an `UpdateError` with a `code`; its message never holds a hash or an error text
of something the operator did not announce (no file-content oracle, no port scanner).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from edge.bundle import BundleError, graph_peak_floats, read_bundle
from edge.runtime import EdgeModel

#: Refusal codes an `UpdateError` carries (also published on the error topic).
CODES = ("bad_announcement", "unsigned", "no_trusted_key", "bad_signature",
         "source_not_allowed", "too_large", "fetch_failed", "sha256_mismatch", "bad_bundle",
         "incompatible", "too_costly", "probe_failed", "internal_error")


class UpdateError(ValueError):
    """An announced bundle that was refused.

    Attributes:
        code: one of `CODES`.
    """

    def __init__(self, message: str, code: str = "bad_bundle") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class OtaPolicy:
    """What the operator allows an announcement to do.

    Attributes:
        trusted_keys: Ed25519 public keys (loaded) whose signature is accepted.
        allow_unsigned: accept bundles without a signature (the operator's explicit opt-out).
        dirs: directories `path` and ``file://`` may read from (resolved; none: refused).
        hosts: host names `url` may fetch from over ``https://`` (none: refused).
        max_bytes: largest zip accepted (bytes).
        timeout_s: total deadline of a download (seconds).
        max_batch: the largest batch the gateway runs; the probe runs at it.
        max_activation_bytes: most bytes the largest intermediate of a batch may take.
    """

    trusted_keys: tuple = ()
    allow_unsigned: bool = False
    dirs: tuple[Path, ...] = ()
    hosts: tuple[str, ...] = ()
    max_bytes: int = 64 * 1024 * 1024
    timeout_s: float = 60.0
    max_batch: int = 64
    max_activation_bytes: int = 256 * 1024 * 1024


def read_announcement(payload: bytes) -> dict:
    """Parse and check an announcement; returns it with ``sha256`` lower-cased."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UpdateError("model announcement is not JSON", "bad_announcement") from None
    if not isinstance(data, dict):
        raise UpdateError("model announcement expected a JSON object", "bad_announcement")
    sha = data.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef"
                                                          for c in sha.lower()):
        raise UpdateError("field 'sha256' expected 64 hex digits (the sha256 of the .zip)",
                          "bad_announcement")
    sources = [k for k in ("data_b64", "path", "url") if k in data]
    if len(sources) != 1 or not isinstance(data[sources[0]], str):
        raise UpdateError("model announcement expected exactly one of 'data_b64', 'path', "
                          "'url' (a string)", "bad_announcement")
    signature = data.get("signature")
    if signature is not None and (not isinstance(signature, str) or len(signature) > 200):
        raise UpdateError("field 'signature' expected base64 text (deepsense sign)",
                          "bad_announcement")
    return {**data, "sha256": sha.lower()}


def check_signature_policy(announcement: dict, policy: OtaPolicy) -> None:
    """Refuse before fetching anything: unsigned, or signed but no key is trusted."""
    if announcement.get("signature") is None:
        if not policy.allow_unsigned:
            raise UpdateError("unsigned bundle refused; sign it with `deepsense sign` and "
                              "give the gateway --trusted-key (or --allow-unsigned-updates)",
                              "unsigned")
    elif not policy.trusted_keys and not policy.allow_unsigned:
        raise UpdateError("signed bundle refused: no --trusted-key given", "no_trusted_key")


def fetch_bundle(announcement: dict, out_dir: str | Path, policy: OtaPolicy) -> Path:
    """Get the announced zip within the policy, check size and sha256, store it as
    ``<out_dir>/<sha256>.zip``."""
    max_bytes = policy.max_bytes
    if "data_b64" in announcement:
        text = announcement["data_b64"]
        if len(text) > 4 * (max_bytes // 3 + 1):           # checked before decoding
            raise UpdateError(f"field 'data_b64' holds more than {max_bytes} bytes",
                              "too_large")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise UpdateError("field 'data_b64' is not valid base64", "bad_announcement") \
                from None
    elif "path" in announcement:
        data = _read_allowed(announcement["path"], policy)
    else:
        data = _download(announcement["url"], policy)
    if len(data) > max_bytes:
        raise UpdateError(f"bundle larger than {max_bytes} bytes", "too_large")
    if hashlib.sha256(data).hexdigest() != announcement["sha256"]:
        raise UpdateError("bundle sha256 does not match the announced one", "sha256_mismatch")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{announcement['sha256']}.zip"
    target.write_bytes(data)
    return target


def _read_allowed(path_text: str, policy: OtaPolicy) -> bytes:
    """A file inside one of `policy.dirs`; nothing about other files is revealed."""
    refused = UpdateError("bundle path is not a file inside an --ota-dir directory",
                          "source_not_allowed")
    try:
        path = Path(path_text).resolve()
    except (OSError, ValueError, RuntimeError):
        raise refused from None
    if not any(path.is_relative_to(d) for d in policy.dirs):
        raise refused
    try:
        if path.stat().st_size > policy.max_bytes:
            raise UpdateError(f"bundle larger than {policy.max_bytes} bytes", "too_large")
        with path.open("rb") as f:
            return f.read(policy.max_bytes + 1)
    except OSError:
        raise refused from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere: refuse it (urllib then raises HTTPError)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _download(url: str, policy: OtaPolicy) -> bytes:
    """``https://`` from an allowed host (``file://`` as a path), within `policy.timeout_s`."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port      # .port raises ValueError on a bad port
    except ValueError:
        raise UpdateError("field 'url' is not a valid URL", "bad_announcement") from None
    if parts.scheme == "file":
        return _read_allowed(parts.path, policy)
    if parts.scheme != "https" or host not in policy.hosts:
        raise UpdateError("field 'url' expected https:// on an --ota-host host",
                          "source_not_allowed")
    opener = urllib.request.build_opener(_NoRedirect)
    deadline = time.monotonic() + policy.timeout_s
    chunks, n = [], 0
    try:
        with opener.open(url, timeout=min(policy.timeout_s, 10.0)) as response:
            while n <= policy.max_bytes:
                if time.monotonic() > deadline:
                    raise UpdateError(f"download from {host} took more than "
                                      f"{policy.timeout_s:g} s", "fetch_failed")
                chunk = response.read(64 * 1024)
                if not chunk:
                    break
                chunks.append(chunk)
                n += len(chunk)
    except (OSError, HTTPException, ValueError) as exc:
        if isinstance(exc, UpdateError):
            raise
        raise UpdateError(f"download from {host} failed ({type(exc).__name__})",
                          "fetch_failed") from None
    return b"".join(chunks)


def load_update(path: Path, current: EdgeModel, policy: OtaPolicy | None = None) -> EdgeModel:
    """Load a fetched bundle and check that it can replace `current` between windows."""
    policy = policy or OtaPolicy()
    try:
        model = EdgeModel(read_bundle(path))
    except BundleError as exc:
        raise UpdateError(f"bundle refused: {exc}", "bad_bundle") from None
    if model.features != current.features:
        raise UpdateError(f"bundle expects features {model.features.to_dict()}, the running "
                          f"model {current.features.to_dict()}; the streams are cut for those",
                          "incompatible")
    needed = 4 * graph_peak_floats(model.manifest) * policy.max_batch
    if needed > policy.max_activation_bytes:
        raise UpdateError(f"bundle needs {needed / 2**20:.0f} MiB for a batch of "
                          f"{policy.max_batch} windows; at most "
                          f"{policy.max_activation_bytes / 2**20:.0f} MiB allowed", "too_costly")
    try:
        window = np.random.default_rng(0).standard_normal((policy.max_batch,
                                                           *model.input_shape))
        probe = model.predict(window.astype(np.float32))
        if not np.isfinite(probe).all():
            raise ValueError("outputs hold NaN or Inf")
        model.summarize(probe)
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError, MemoryError) as exc:
        raise UpdateError(f"bundle fails a test prediction at batch {policy.max_batch}: "
                          f"{type(exc).__name__}: {str(exc)[:200]}", "probe_failed") from None
    return model
