"""Outbound DKIM signing for the relay domain (RFC 6376, RFC 8463).

Every delivered message is signed relaxed/relaxed with ``d=`` = the relay domain so that
SPF, DKIM and DMARC all align with us at the receiver. From, To, Subject, Date and
Message-ID are oversigned (listed once more than present) so nobody can add a second copy
and replay our signature with different visible content (RFC 6376 §8.15). ``l=`` is never
used: it would let anyone append text under our signature.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.core.errors import DkimKeyError as DkimKeyError

if TYPE_CHECKING:
    from relay.settings import Settings

SIGNED = (
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "in-reply-to", "references", "reply-to",
)  # fmt: skip
OVERSIGNED = ("from", "to", "subject", "date", "message-id")
ALGORITHMS = ("rsa-sha256", "ed25519-sha256")


def _header_names(message: bytes) -> list[str]:
    """Field names of the header block, in order (lower-cased)."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    names = []
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


class DkimSigner:
    """Signs messages for one domain and selector; safe to share across tasks."""

    def __init__(
        self,
        domain: str,
        selector: str,
        private_key_pem: bytes,
        algorithm: str = "rsa-sha256",
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise DkimKeyError(f"unsupported DKIM algorithm {algorithm!r}")
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as err:
            raise DkimKeyError(f"cannot read DKIM private key: {err}") from None
        if algorithm == "rsa-sha256":
            if not isinstance(key, rsa.RSAPrivateKey):
                raise DkimKeyError("rsa-sha256 needs an RSA private key")
            if key.key_size < 1024:
                raise DkimKeyError("RSA key too small for DKIM (use 2048 bits)")
            self._key = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        else:
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise DkimKeyError("ed25519-sha256 needs an Ed25519 private key")
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            self._key = base64.b64encode(raw)
        self.domain = domain.lower().rstrip(".")
        self.selector = selector
        self.algorithm = algorithm
        self.public_txt = txt_value(key)

    def headers_to_sign(self, message: bytes) -> list[bytes]:
        """Each signed field as often as present, oversigned ones once more."""
        present = [n for n in _header_names(message) if n in SIGNED]
        return [n.encode() for n in present + list(OVERSIGNED)]

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with a DKIM-Signature header prepended."""
        linesep = b"\r\n" if b"\r\n" in message else b"\n"
        signer = dkim.DKIM(message, linesep=linesep)
        sig: bytes = signer.sign(  # dkimpy has no type information
            self.selector.encode(),
            self.domain.encode(),
            self._key,
            signature_algorithm=self.algorithm.encode(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=self.headers_to_sign(message),
            length=False,
        )
        return sig + message


def txt_value(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | object) -> str:
    """The ``<selector>._domainkey`` TXT value for a private key."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    raise DkimKeyError("unsupported key type")


def generate_key(algorithm: str = "rsa-sha256") -> tuple[bytes, str]:
    """A new key: ``(private PEM, TXT value)``; RSA 2048 (PKCS#1) or Ed25519 (PKCS#8)."""
    if algorithm in ("rsa", "rsa-sha256"):
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    elif algorithm in ("ed25519", "ed25519-sha256"):
        key = ed25519.Ed25519PrivateKey.generate()
        fmt = serialization.PrivateFormat.PKCS8
    else:
        raise DkimKeyError(f"unsupported DKIM algorithm {algorithm!r}")
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    return pem, txt_value(key)


def public_txt_from_pem(private_key_pem: bytes) -> str:
    """The TXT value matching a private key file (for ``relay dns records``)."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise DkimKeyError(f"cannot read DKIM private key: {err}") from None
    return txt_value(key)


def load_signer(settings: Settings) -> DkimSigner | None:
    """The signer configured by ``[dkim]``; None when no key file is configured.

    A configured but unreadable key raises DkimKeyError: sending unsigned mail from a relay
    that is supposed to sign would quietly fail DMARC at every receiver.
    """
    path: Path | None = settings.dkim.key_file
    if path is None or getattr(settings.dkim, "enabled", None) is False:
        return None
    try:
        pem = Path(path).read_bytes()
    except OSError as err:
        raise DkimKeyError(f"setting 'dkim.key_file': cannot read {path}: {err}") from None
    return DkimSigner(settings.relay.domain, settings.dkim.selector, pem, settings.dkim.algorithm)
