"""Verification of the Client Credentials Assertion (TS 33.501 13.3.8, TS 29.500 5.2.3.2.11)
carried in `3gpp-Sbi-Client-Credentials`: syntax, header, claims, signer chain and signature.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .certificates import CertificateError, CertificateVerifier, VerifiedCertificate
from .identifiers import IdentifierError, normalize_nf_instance_id, normalize_nf_set_id
from .jws import (
    JwsError,
    ParsedJws,
    alg_for_key,
    load_json_object,
    parse_compact,
    verify_signature,
)
from .rejections import CcaVerificationFailure

__all__ = ["VerifiedCca", "CcaVerifier"]

_SYNTAX = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)
_STANDARD_BASE64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII
)
_FORBIDDEN_HEADERS = ("x5u", "jku", "jwk", "crit")
_MAX_AUDIENCES = 16


@dataclass(frozen=True, slots=True)
class VerifiedCca:
    """The facts a verified CCA proves about the consumer that signed it."""

    nf_instance_id: str
    nf_set_id: str | None
    signer: VerifiedCertificate
    claims: Mapping[str, Any] = field(repr=False)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class CcaVerifier:
    """Verifies CCAs addressed to a producer of type `producer_nf_type`."""

    def __init__(
        self,
        certificates: CertificateVerifier,
        *,
        producer_nf_type: str,
        set_claim: str = "consumerNfSetId",
        clock_skew: int = 30,
        max_age: int = 300,
        clock: Callable[[], float] = time.time,
        max_size: int = 32768,
        max_x5c: int = 8,
        max_cert_size: int = 8192,
    ) -> None:
        if not producer_nf_type or clock_skew < 0 or max_age < 1 or max_x5c < 1:
            raise ValueError("CCA verifier settings out of range")
        self.certificates = certificates
        self.producer_nf_type = producer_nf_type.upper()
        self.set_claim = set_claim
        self.clock_skew = clock_skew
        self.max_age = max_age
        self.max_size = max_size
        self.max_x5c = max_x5c
        self.max_cert_size = max_cert_size
        self._max_x5c_length = -(-max_cert_size // 3) * 4
        self._clock = clock

    def verify(self, value: str) -> VerifiedCca:
        """Verify the CCA header value and return what it proves.

        Raises CcaVerificationFailure with a short, safe detail on any failure.
        """
        if not isinstance(value, str) or len(value) > self.max_size:
            raise CcaVerificationFailure(f"CCA larger than {self.max_size} bytes")
        if _SYNTAX.fullmatch(value) is None:
            raise CcaVerificationFailure("CCA is not three base64url parts joined by dots")
        try:
            parsed = parse_compact(value, max_size=self.max_size)
            claims = load_json_object(parsed.payload)
        except JwsError as error:
            raise CcaVerificationFailure(f"CCA is malformed: {error}") from None

        chain_der = self._check_header(parsed.header)
        sub, nf_set_id = self._check_claims(claims)
        try:
            signer = self.certificates.verify(chain_der)
        except CertificateError as error:
            raise CcaVerificationFailure(f"CCA signer certificate: {error}") from None
        self._check_signature(parsed, signer.public_key)

        if signer.nf_instance_id is None:
            raise CcaVerificationFailure("CCA signer certificate has no NF instance ID")
        if sub != signer.nf_instance_id:
            raise CcaVerificationFailure("CCA sub is not the signer certificate's NF instance")
        return VerifiedCca(
            nf_instance_id=sub,
            nf_set_id=nf_set_id,
            signer=signer,
            claims=MappingProxyType(claims),
        )

    def _check_header(self, header: Mapping[str, Any]) -> list[bytes]:
        for name in _FORBIDDEN_HEADERS:
            if name in header:
                raise CcaVerificationFailure(f"CCA header parameter {name} is not accepted")
        if not isinstance(header.get("alg"), str):
            raise CcaVerificationFailure("CCA header has no alg")
        if "typ" in header and header["typ"] != "JWT":
            raise CcaVerificationFailure("CCA typ is not JWT")

        x5c = header.get("x5c")
        if not isinstance(x5c, list) or not x5c:
            raise CcaVerificationFailure("CCA header has no x5c certificate chain")
        if len(x5c) > self.max_x5c:
            raise CcaVerificationFailure(f"CCA x5c has more than {self.max_x5c} certificates")
        chain_der = []
        for encoded in x5c:
            if not isinstance(encoded, str):
                raise CcaVerificationFailure("CCA x5c entry is not a base64 string")
            if len(encoded) > self._max_x5c_length:
                raise CcaVerificationFailure("CCA x5c entry is not a certificate of bounded size")
            if _STANDARD_BASE64.fullmatch(encoded) is None:
                raise CcaVerificationFailure("CCA x5c entry is not standard base64")
            try:
                der = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise CcaVerificationFailure("CCA x5c entry is not standard base64") from None
            if not der or len(der) > self.max_cert_size:
                raise CcaVerificationFailure("CCA x5c entry is not a certificate of bounded size")
            chain_der.append(der)
        return chain_der

    def _check_claims(self, claims: Mapping[str, Any]) -> tuple[str, str | None]:
        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise CcaVerificationFailure("CCA sub missing or not a string")
        try:
            sub = normalize_nf_instance_id(sub)
        except IdentifierError:
            raise CcaVerificationFailure("CCA sub is not an NF instance ID") from None

        aud = claims.get("aud")
        if not isinstance(aud, list) or not 0 < len(aud) <= _MAX_AUDIENCES:
            raise CcaVerificationFailure("CCA aud is not an array of NF types")
        if not all(isinstance(entry, str) for entry in aud):
            raise CcaVerificationFailure("CCA aud is not an array of NF types")
        if self.producer_nf_type not in aud:
            raise CcaVerificationFailure("CCA aud does not include this producer's NF type")

        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_integer(exp) or not _is_integer(iat):
            raise CcaVerificationFailure("CCA exp and iat must be integers")
        now = self._clock()
        if exp <= now - self.clock_skew:
            raise CcaVerificationFailure("CCA expired")
        if iat > now + self.clock_skew:
            raise CcaVerificationFailure("CCA issued in the future")
        if not 0 < exp - iat <= self.max_age:
            raise CcaVerificationFailure(f"CCA lifetime not within 1 to {self.max_age} seconds")
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not _is_integer(nbf) or nbf > now + self.clock_skew:
                raise CcaVerificationFailure("CCA not yet valid")

        if self.set_claim not in claims:
            return sub, None
        nf_set_id = claims[self.set_claim]
        if not isinstance(nf_set_id, str):
            raise CcaVerificationFailure("CCA NF Set ID is not a string")
        try:
            return sub, normalize_nf_set_id(nf_set_id)
        except IdentifierError:
            raise CcaVerificationFailure("CCA NF Set ID is malformed") from None

    def _check_signature(self, parsed: ParsedJws, public_key: PublicKeyTypes) -> None:
        try:
            alg = alg_for_key(public_key)
        except JwsError:
            raise CcaVerificationFailure("CCA signer key type is not supported") from None
        if parsed.header["alg"] != alg:
            raise CcaVerificationFailure("CCA alg does not match the signer key")
        try:
            verify_signature(parsed, alg, public_key)
        except JwsError:
            raise CcaVerificationFailure("CCA signature does not verify") from None
