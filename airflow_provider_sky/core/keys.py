"""SSH key material: generation, parsing and the local cloud's default key.

Private keys travel as OpenSSH/PEM text (what an Airflow connection or secret
backend stores); they are parsed into paramiko keys only when a connection is made.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.paths import sky_home

if TYPE_CHECKING:
    import paramiko

DEFAULT_KEY_NAME = "sky-key"


def generate_private_key() -> str:
    """A new Ed25519 private key in OpenSSH format."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def public_key_line(private_key: str, comment: str = "airflow-provider-sky") -> str:
    """The ``authorized_keys`` line (``ssh-ed25519 AAAA... comment``) of a private key."""
    from cryptography.hazmat.primitives import serialization

    key = _load_crypto_key(private_key)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode()} {comment}"


def _load_crypto_key(private_key: str):
    from cryptography.hazmat.primitives import serialization

    data = private_key.strip().encode() + b"\n"
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            return serialization.load_ssh_private_key(data, password=None)
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, Exception) as exc:
        raise SkyConfigError(
            f"ssh private key: cannot parse it ({type(exc).__name__}); accepted: an unencrypted "
            "OpenSSH ('-----BEGIN OPENSSH PRIVATE KEY-----') or PEM RSA/ECDSA/Ed25519 private key"
        ) from None


def load_pkey(private_key: str) -> paramiko.PKey:
    """Parse private key text into a paramiko key (Ed25519, ECDSA or RSA)."""
    import paramiko

    _load_crypto_key(private_key)  # one clear error for unparsable text
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(private_key.strip() + "\n"))
        except (paramiko.SSHException, ValueError):
            continue
    raise SkyConfigError("ssh private key: unsupported key type; accepted: Ed25519, ECDSA or RSA")


def host_key_line(key: paramiko.PKey) -> str:
    """``<type> <base64>``: how a pinned host key is stored in a cluster handle."""
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(key_line: str) -> str:
    """OpenSSH-style SHA256 fingerprint of a ``<type> <base64>`` key line."""
    blob = base64.b64decode(key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def default_private_key() -> str:
    """The key the local cloud uses when no connection supplies one: generated once, kept 0600.

    Created with O_EXCL so concurrent first calls from several task processes agree on one key.
    """
    path = sky_home() / "keys" / DEFAULT_KEY_NAME
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = generate_private_key()
    tmp = path.with_name(f".{DEFAULT_KEY_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    try:
        os.link(tmp, path)  # atomic: the first writer wins, later ones read its key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return Path(path).read_text()
