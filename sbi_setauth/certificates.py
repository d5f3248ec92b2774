"""Verification of NF certificate chains (TS 33.310 6.1.3c) against the operator trust anchors
and CRLs, and extraction of the NF instance ID, NF Set ID and NF types they prove.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from asn1crypto import core as asn1
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .identifiers import (
    IdentifierError,
    nf_set_id_from_fqdn,
    nf_type_of_set,
    normalize_nf_instance_id,
)

__all__ = [
    "CertificateError",
    "VerifiedCertificate",
    "TrustStore",
    "CertificateVerifier",
    "NF_TYPES_OID",
]

logger = logging.getLogger(__name__)

NF_TYPES_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.34")
MAX_VALIDATION_SECONDS = 0.1
MAX_NF_TYPES = 16

_NF_TYPE = re.compile(r"[A-Za-z0-9_]{1,32}", re.ASCII)
_URN_UUID = "urn:uuid:"
_REASON_LENGTH = 160


def _require_client_auth(
    policy: Policy, certificate: x509.Certificate, usage: x509.ExtendedKeyUsage
) -> None:
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise ValueError("certificate EKU lacks clientAuth")


# The NF profile makes the SAN critical beside a non-empty subject (the Web PKI forbids that),
# and an NF client certificate must state clientAuth rather than omit the EKU.
_EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .require_present(x509.SubjectAlternativeName, Criticality.CRITICAL, None)
    .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_client_auth)
)
# Limitation: CA signatures follow the Web PKI algorithm list (RSA >= 2048, ECDSA P-256/384/521);
# an operator CA with an Ed25519 key is not accepted.
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


class CertificateError(ValueError):
    """A certificate chain that is not trusted or does not follow the NF profile.

    str() is a short reason that is safe to show to the peer.
    """


class _NfTypes(asn1.SequenceOf):
    _child_spec = asn1.IA5String


@dataclass(frozen=True, slots=True)
class VerifiedCertificate:
    """The facts a validated NF certificate chain proves; only verification produces these."""

    nf_instance_id: str | None
    nf_set_id: str | None
    nf_types: tuple[str, ...]
    fingerprint: bytes
    not_after: float
    public_key: PublicKeyTypes = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class _TrustState:
    generation: int
    anchors: tuple[x509.Certificate, ...]
    store: Store
    crls_by_issuer: dict[bytes, tuple[x509.CertificateRevocationList, ...]]


def _load_anchor_file(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as handle:
        data = handle.read()
    certificates = x509.load_pem_x509_certificates(data)
    if not certificates:
        raise ValueError("no certificate")
    return certificates


def _load_crl_file(path: str) -> x509.CertificateRevocationList:
    with open(path, "rb") as handle:
        data = handle.read()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _file_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino


class TrustStore:
    """The operator CA certificates NF certificates chain to, and the CRLs of those CAs.

    Built from files, it re-reads a file when it changes, checking at most every
    `check_interval` seconds and only when used. A file that fails to load keeps its previous
    contents and an error is logged.
    """

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        crls: Sequence[x509.CertificateRevocationList] = (),
        *,
        check_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not anchors:
            raise ValueError("a trust store needs at least one trust anchor")
        self._anchors: dict[str, list[x509.Certificate]] = {"": list(anchors)}
        self._crls: dict[str, x509.CertificateRevocationList] = {
            str(index): crl for index, crl in enumerate(crls)
        }
        self._stamps: dict[str, tuple[int, int, int] | None] = {}
        self._check_interval = check_interval
        self._monotonic = monotonic
        self._next_check = monotonic() + check_interval
        self._lock = threading.Lock()
        self._generation = 0
        self._state = self._build_state()

    @classmethod
    def from_files(
        cls,
        anchor_paths: Iterable[str | os.PathLike[str]],
        crl_paths: Iterable[str | os.PathLike[str]] = (),
        *,
        check_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> TrustStore:
        """Load PEM trust anchor bundles and PEM or DER CRLs; ValueError names a bad file."""
        stamps: dict[str, tuple[int, int, int] | None] = {}
        anchors: dict[str, list[x509.Certificate]] = {}
        crls: dict[str, x509.CertificateRevocationList] = {}
        for path in map(os.fspath, anchor_paths):
            stamps[path] = _file_stamp(path)
            try:
                anchors[path] = _load_anchor_file(path)
            except (OSError, ValueError) as error:
                raise ValueError(f"trust anchor file {path}: {error}") from None
        for path in map(os.fspath, crl_paths):
            stamps[path] = _file_stamp(path)
            try:
                crls[path] = _load_crl_file(path)
            except (OSError, ValueError) as error:
                raise ValueError(f"revocation list file {path}: {error}") from None

        loaded = [anchor for bundle in anchors.values() for anchor in bundle]
        store = cls(loaded, check_interval=check_interval, monotonic=monotonic)
        store._anchors, store._crls, store._stamps = anchors, crls, stamps
        store._state = store._build_state()
        return store

    @property
    def generation(self) -> int:
        """A number that changes whenever the trusted contents change."""
        return self._current().generation

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        """The trust anchors now in force."""
        return self._current().anchors

    def _current(self) -> _TrustState:
        if self._stamps:
            now = self._monotonic()
            if now >= self._next_check:
                with self._lock:
                    if now >= self._next_check:
                        self._next_check = now + self._check_interval
                        self._reload_changed()
        return self._state

    def _reload_changed(self) -> None:
        changed = False
        for path, previous in self._stamps.items():
            stamp = _file_stamp(path)
            if stamp == previous:
                continue
            self._stamps[path] = stamp
            try:
                if path in self._anchors:
                    self._anchors[path] = _load_anchor_file(path)
                else:
                    self._crls[path] = _load_crl_file(path)
            except (OSError, ValueError) as error:
                logger.error("%s not reloaded, keeping its previous contents: %s", path, error)
                continue
            changed = True
        if changed:
            self._state = self._build_state()
            logger.info("trust anchors and revocation lists reloaded")

    def _build_state(self) -> _TrustState:
        self._generation += 1
        anchors = tuple(anchor for bundle in self._anchors.values() for anchor in bundle)
        crls_by_issuer: dict[bytes, list[x509.CertificateRevocationList]] = {}
        for crl in self._crls.values():
            issuer = crl.issuer.public_bytes()
            crls_by_issuer.setdefault(issuer, []).append(crl)
        return _TrustState(
            generation=self._generation,
            anchors=anchors,
            store=Store(list(anchors)),
            crls_by_issuer={issuer: tuple(crls) for issuer, crls in crls_by_issuer.items()},
        )


def _reason(error: Exception) -> str:
    text = str(error).split(" (encountered processing", 1)[0]
    return text[:_REASON_LENGTH]


def _chain_key(chain_der: Sequence[bytes]) -> bytes:
    digest = hashlib.sha256()
    for der in chain_der:
        digest.update(len(der).to_bytes(4, "big"))
        digest.update(der)
    return digest.digest()


def _nf_types(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_oid(NF_TYPES_OID)
    except x509.ExtensionNotFound:
        return ()
    raw = extension.value.public_bytes()
    try:
        parsed = _NfTypes.load(raw, strict=True)
        values = parsed.native
    except (ValueError, TypeError) as error:
        raise CertificateError("nfTypes extension is malformed") from error
    if parsed.dump(force=True) != raw or not values or len(values) > MAX_NF_TYPES:
        raise CertificateError("nfTypes extension is malformed")
    if not all(isinstance(value, str) and _NF_TYPE.fullmatch(value) for value in values):
        raise CertificateError("nfTypes extension holds an invalid NF type")
    return tuple(dict.fromkeys(value.upper() for value in values))


def _identity(leaf: x509.Certificate) -> tuple[str | None, str | None, tuple[str, ...]]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise CertificateError("certificate has no subjectAltName") from None
    if not san.critical:
        raise CertificateError("subjectAltName is not critical")

    uuids = [
        uri[len(_URN_UUID):]
        for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uri[: len(_URN_UUID)].lower() == _URN_UUID
    ]
    if len(uuids) > 1:
        raise CertificateError("certificate has more than one urn:uuid NF instance ID")
    try:
        nf_instance_id = normalize_nf_instance_id(uuids[0]) if uuids else None
        nf_set_ids = {
            nf_set_id
            for name in san.value.get_values_for_type(x509.DNSName)
            if (nf_set_id := nf_set_id_from_fqdn(name)) is not None
        }
    except IdentifierError as error:
        raise CertificateError(f"certificate identity is malformed: {error}") from None
    if len(nf_set_ids) > 1:
        raise CertificateError("certificate names more than one NF Set")
    nf_set_id = nf_set_ids.pop() if nf_set_ids else None

    nf_types = _nf_types(leaf)
    if nf_set_id is not None and nf_types and nf_type_of_set(nf_set_id) not in nf_types:
        raise CertificateError("certificate NF type contradicts its NF Set")
    return nf_instance_id, nf_set_id, nf_types


class CertificateVerifier:
    """Validates NF certificate chains (clientAuth) and returns the identity they prove.

    Results are cached by the SHA-256 of the whole chain in a bounded LRU, until the earliest
    notAfter of the validated path or until the trusted contents change.
    """

    def __init__(
        self,
        trust: TrustStore,
        *,
        max_chain: int = 8,
        max_depth: int = 6,
        max_cert_size: int = 16384,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_chain < 1 or max_depth < 2 or max_cert_size < 1 or cache_size < 0:
            raise ValueError("certificate verifier bounds must be positive")
        self.trust = trust
        self.max_chain = max_chain
        self.max_depth = max_depth
        self.max_cert_size = max_cert_size
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, VerifiedCertificate]] = OrderedDict()
        self._cache_generation = 0
        self._crl_signatures: dict[tuple[int, bytes, bytes], bool] = {}
        self._lock = threading.Lock()

    def verify(self, chain_der: Sequence[bytes]) -> VerifiedCertificate:
        """Validate `chain_der` (leaf first) and return the NF identity it proves.

        Raises CertificateError when the chain is too long or large, does not lead to a trust
        anchor, is revoked, or does not follow the NF certificate profile.
        """
        if not chain_der:
            raise CertificateError("no certificate")
        if len(chain_der) > self.max_chain:
            raise CertificateError(f"more than {self.max_chain} certificates")
        if any(not isinstance(der, bytes) or len(der) > self.max_cert_size for der in chain_der):
            raise CertificateError(f"certificate larger than {self.max_cert_size} bytes")

        state = self.trust._current()
        now = self._clock()
        key = _chain_key(chain_der)
        with self._lock:
            if self._cache_generation != state.generation:
                self._cache.clear()
                self._cache_generation = state.generation
            cached = self._cache.get(key)
            if cached is not None:
                valid_until, verified = cached
                if now < valid_until:
                    self._cache.move_to_end(key)
                    return verified
                del self._cache[key]

        verified, valid_until = self._verify_uncached(chain_der, state, now)
        if self.cache_size:
            with self._lock:
                if self._cache_generation != state.generation:
                    return verified
                self._cache[key] = (valid_until, verified)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return verified

    def _verify_uncached(
        self, chain_der: Sequence[bytes], state: _TrustState, now: float
    ) -> tuple[VerifiedCertificate, float]:
        try:
            certificates = [x509.load_der_x509_certificate(der) for der in chain_der]
        except (ValueError, x509.InvalidVersion):
            raise CertificateError("certificate is not valid DER") from None

        verifier = (
            PolicyBuilder()
            .store(state.store)
            .time(datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
            .max_chain_depth(self.max_depth - 2)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        started = time.perf_counter()
        try:
            path = verifier.verify(certificates[0], certificates[1:]).chain
        except VerificationError as error:
            raise CertificateError(f"certificate path invalid: {_reason(error)}") from None
        except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension,
                x509.UnsupportedGeneralNameType) as error:
            raise CertificateError(f"certificate is malformed: {_reason(error)}") from None
        elapsed = time.perf_counter() - started
        # Limitation: the native path builder cannot be interrupted, so a validation over the
        # bound is refused when it returns rather than stopped at 100 ms; the count, size and
        # depth caps and cryptography's own work budget keep it to milliseconds.
        if elapsed > MAX_VALIDATION_SECONDS:
            logger.warning("certificate path validation abandoned after %.3f s", elapsed)
            raise CertificateError("certificate path validation took too long")

        self._check_revocation(path, state)
        leaf = path[0]
        try:
            nf_instance_id, nf_set_id, nf_types = _identity(leaf)
            public_key = leaf.public_key()
        except CertificateError:
            raise
        except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension,
                x509.UnsupportedGeneralNameType) as error:
            raise CertificateError(f"certificate is malformed: {_reason(error)}") from None
        verified = VerifiedCertificate(
            nf_instance_id=nf_instance_id,
            nf_set_id=nf_set_id,
            nf_types=nf_types,
            fingerprint=hashlib.sha256(chain_der[0]).digest(),
            not_after=leaf.not_valid_after_utc.timestamp(),
            public_key=public_key,
        )
        valid_until = min(cert.not_valid_after_utc.timestamp() for cert in path)
        return verified, valid_until

    def _check_revocation(self, path: Sequence[x509.Certificate], state: _TrustState) -> None:
        for certificate, issuer in zip(path, path[1:]):
            crls = state.crls_by_issuer.get(issuer.subject.public_bytes(), ())
            # Limitation: an issuer without a CRL is treated as revoking nothing.
            if not crls:
                continue
            trusted = [crl for crl in crls if self._crl_signed_by(crl, issuer, state)]
            if not trusted:
                raise CertificateError("revocation list of the issuer does not verify")
            # Limitation: a CRL past its nextUpdate is still used; a fresher one is not fetched.
            for crl in trusted:
                if crl.get_revoked_certificate_by_serial_number(certificate.serial_number):
                    raise CertificateError("certificate is revoked")

    def _crl_signed_by(
        self, crl: x509.CertificateRevocationList, issuer: x509.Certificate, state: _TrustState
    ) -> bool:
        issuer_key = issuer.public_key()
        key = (
            state.generation,
            crl.fingerprint(hashes.SHA256()),
            issuer_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        with self._lock:
            known = self._crl_signatures.get(key)
        if known is not None:
            return known
        try:
            valid = crl.is_signature_valid(issuer_key)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            logger.error("revocation list for %s has an invalid signature", issuer.subject)
        with self._lock:
            if len(self._crl_signatures) > 256:
                self._crl_signatures.clear()
            self._crl_signatures[key] = valid
        return valid
