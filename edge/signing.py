"""Ed25519 signatures of bundle zips: who may replace the model a gateway runs.

The operator makes a key pair once (`deepsense keygen`), keeps the private key off the
gateways, signs each bundle zip (`deepsense sign`) and gives every gateway the public key
(`serve --trusted-key`). The signature covers the zip's bytes, so it pins the manifest, the
weights and the LiteRT file; an over-the-air announcement carries it base64-encoded::

    {"sha256": "<hex of the zip>", "url": "https://...", "signature": "<base64, 64 bytes>"}

Needs the optional ``signing`` extra (the `cryptography` package; Debian and Raspberry Pi OS
ship it as python3-cryptography for 32-bit boards). Keys are PEM files: the private key
PKCS#8 (written with mode 0600), the public key SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from deepsense.errors import require

#: Suffix of the detached signature file `deepsense sign` writes next to the zip.
SIGNATURE_SUFFIX = ".sig"
#: Bytes of an Ed25519 signature.
SIGNATURE_BYTES = 64


class SignatureError(ValueError):
    """A key that cannot be read, or a signature that does not verify; says which."""


def _serialization():
    return require("cryptography.hazmat.primitives.serialization", "signing")


def _ed25519():
    return require("cryptography.hazmat.primitives.asymmetric.ed25519", "signing")


def generate_key(private_path: str | Path) -> Path:
    """Write a new private key to `private_path` (0600) and its public key next to it.

    Returns:
        The public key's path, ``<private_path>.pub``.

    Raises:
        FileExistsError: `private_path` exists (a key is never overwritten).
    """
    serialization, ed25519 = _serialization(), _ed25519()
    private_path = Path(private_path)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path = private_path.with_name(private_path.name + ".pub")
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_path


def load_public_key(path: str | Path):
    """An Ed25519 public key from a PEM file.

    Raises:
        SignatureError: unreadable, not PEM, or not an Ed25519 key (the message names the file).
    """
    serialization, ed25519 = _serialization(), _ed25519()
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"trusted key {path}: cannot read an Ed25519 public key "
                             f"({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SignatureError(f"trusted key {path}: expected an Ed25519 public key. "
                             f"Received: {type(key).__name__}")
    return key


def key_id(public_key) -> str:
    """Short fingerprint of a public key: the first 16 hex digits of sha256(raw key)."""
    serialization = _serialization()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_bytes(data: bytes, private_path: str | Path) -> str:
    """The base64 Ed25519 signature of `data` with the private key in `private_path`.

    Raises:
        SignatureError: the file is not an unencrypted Ed25519 private key (PEM).
    """
    serialization, ed25519 = _serialization(), _ed25519()
    try:
        key = serialization.load_pem_private_key(Path(private_path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"signing key {private_path}: cannot read an unencrypted "
                             f"Ed25519 private key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SignatureError(f"signing key {private_path}: expected an Ed25519 private key. "
                             f"Received: {type(key).__name__}")
    return base64.b64encode(key.sign(data)).decode()


def verify_bytes(data: bytes, signature_b64: str, public_keys: list) -> str:
    """Check `signature_b64` over `data` against each trusted key.

    Returns:
        The `key_id` of the key that made the signature.

    Raises:
        SignatureError: not base64 of 64 bytes, or made by none of `public_keys`.
    """
    exceptions = require("cryptography.exceptions", "signing")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature is not valid base64") from None
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature expected {SIGNATURE_BYTES} bytes. "
                             f"Received: {len(signature)}")
    for key in public_keys:
        try:
            key.verify(signature, data)
        except exceptions.InvalidSignature:
            continue
        return key_id(key)
    raise SignatureError(f"signature made by none of the {len(public_keys)} trusted key(s)")
