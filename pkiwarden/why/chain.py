"""Does a Secret's certificate chain to the namespace's trust bundle, and is it valid now?

Pure: the certificate's public part and the bundle's CA certificates in, a
value out; the clock is passed in. Only ``tls.crt`` ever reaches here, never
a key. "Chains" means what a TLS peer trusting the bundle checks first: the
leaf's issuer is a bundle CA's subject and the signature verifies with that
CA's public key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from shared.certificates import serial_hex

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class ChainFacts:
    """What the certificate in a Secret written by a Pki says about trust.

    ``chains`` is None when there was no readable bundle to check against;
    ``problem`` says why it does not chain, is not valid now, or was not checked.
    """

    serial: str | None
    not_before: str | None
    not_after: str | None
    issuer: str | None
    chains: bool | None
    authority_subject: str | None = None
    authority_serial: str | None = None
    valid_now: bool | None = None
    problem: str | None = None

    @property
    def failed(self) -> bool:
        """The certificate is there but a peer trusting the bundle would refuse it."""
        return self.chains is False or self.valid_now is False


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def _issued_by(leaf: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _validity(leaf: x509.Certificate, now: dt.datetime) -> str | None:
    if now < leaf.not_valid_before_utc:
        return f"not valid before {_stamp(leaf.not_valid_before_utc)}"
    if now > leaf.not_valid_after_utc:
        return f"expired at {_stamp(leaf.not_valid_after_utc)}"
    return None


def check_chain(
    leaf_pem: bytes | None,
    authorities: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    bundle: str,
    bundle_problem: str | None = None,
) -> ChainFacts:
    """The leaf in ``leaf_pem`` against ``authorities`` (the CAs of ``bundle``) at ``now``.

    ``bundle_problem`` set: the bundle could not be used, so chaining is not
    checked (None) and the problem says why; validity is still checked.
    """
    try:
        leaf = x509.load_pem_x509_certificate(leaf_pem or b"")
    except ValueError as error:
        problem = "tls.crt is empty" if not leaf_pem else f"tls.crt is not a certificate: {error}"
        return ChainFacts(None, None, None, None, chains=False, problem=problem)
    expired = _validity(leaf, now)
    base = ChainFacts(
        serial=serial_hex(leaf.serial_number),
        not_before=_stamp(leaf.not_valid_before_utc),
        not_after=_stamp(leaf.not_valid_after_utc),
        issuer=leaf.issuer.rfc4514_string(),
        chains=None,
        valid_now=expired is None,
        problem=expired,
    )
    if bundle_problem is not None:
        return replace(base, chains=None, problem=expired or bundle_problem)
    named = [ca for ca in authorities if ca.subject == leaf.issuer]
    signer = next((ca for ca in named if _issued_by(leaf, ca)), None)
    if signer is not None:
        return replace(
            base,
            chains=True,
            authority_subject=signer.subject.rfc4514_string(),
            authority_serial=serial_hex(signer.serial_number),
        )
    if named:
        why = (
            f"issued by {base.issuer}, a name a CA in {bundle} has, but its signature"
            " does not verify with that CA's key (a CA replaced under the same name)"
        )
    else:
        why = f"issued by {base.issuer}, which is not a CA in {bundle}"
    return replace(base, chains=False, problem=why if expired is None else f"{why}; {expired}")


CHAIN_WHO = "the issuer by itself during a CA rotation; otherwise the platform team"


def chain_problem(secret: str, chain: ChainFacts) -> str | None:
    """The verdict's words for a certificate a peer trusting the bundle would refuse."""
    if chain.chains is False:
        return f"the certificate in Secret {secret} does not chain to the trust bundle"
    if chain.valid_now is False:
        return f"the certificate in Secret {secret} is not valid now ({chain.problem})"
    return None


def chain_fix(secret: str, pki: str, chain: ChainFacts) -> str | None:
    """What to do about it: a re-issue by the current CA, which the issuer does by itself."""
    if chain.chains is False:
        return (
            f"the certificate in Secret {secret} is not signed by a CA the namespace trusts:"
            f" during a CA rotation wait for the issuer to re-issue Pki {pki}"
            " (`pkiwarden ca status` shows the phase); otherwise the platform team checks the"
            " PkiAuthority (`kubectl get pkica`) and the issuer's log"
        )
    if chain.valid_now is False:
        return (
            f"the certificate in Secret {secret} is not valid now ({chain.problem}):"
            f" the issuer renews before expiry, so check that it runs and Pki {pki}'s status"
        )
    return None
