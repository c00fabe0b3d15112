"""What one of pkiwarden's Secrets holds: its certificate's facts, and its key when read whole.

The Secret's annotations are the record of what was issued (serial, notAfter,
the hash of the spec it was issued from). They are written in the same request
as the certificate, so a crash between writing the Secret and writing the
Pki's status loses nothing: the next reconcile reads the Secret and sees the
work is done.

A Secret from the issued-Secret cache carries its facts only
(``issuer.runtime.issued_facts``); one read from the API server carries its
data, parsed here into the same facts and its private key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from issuer.runtime import issuance
from issuer.runtime.issued_facts import (
    NOT_AFTER_ANNOTATION,
    SERIAL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    IssuedFacts,
    cached_facts,
    read_whole,
)
from shared.certificates import serial_hex

__all__ = [
    "NOT_AFTER_ANNOTATION",
    "SERIAL_ANNOTATION",
    "SPEC_HASH_ANNOTATION",
    "StoredCertificate",
    "read_stored",
]


@dataclass(frozen=True)
class StoredCertificate:
    """What one of our Secrets holds; ``key`` only when the Secret was read whole."""

    facts: IssuedFacts
    key: issuance.PrivateKey | None = None

    @property
    def serial(self) -> str:
        return serial_hex(self.facts.serial)

    @property
    def spec_hash(self) -> str:
        return self.facts.spec_hash


def read_stored(secret: Mapping[str, Any]) -> StoredCertificate | str:
    """The Secret's certificate facts (and key), or a few words on what is wrong with them."""
    cached = cached_facts(secret)
    if cached is not None:
        return cached if isinstance(cached, str) else StoredCertificate(cached)
    read = read_whole(secret)
    if isinstance(read, str):
        return read
    facts, key = read
    return StoredCertificate(facts, key)
