"""Reads the raw credentials out of an ASGI request: strictly, with sizes and counts checked.

Nothing here verifies a signature; it only decides what the request presented, and refuses
requests whose credential headers are duplicated, oversized or malformed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import Scope

from .forwarded import (
    ForwardedCertificateError,
    chain_from_client_cert,
    chain_from_xfcc,
    is_trusted_proxy,
)
from .rejections import CcaVerificationFailure, InvalidRequest, PeerCertificateInvalid

__all__ = ["RawCredentials", "CredentialReader", "CCA_HEADER"]

CCA_HEADER = b"3gpp-sbi-client-credentials"
MAX_AUTHORIZATION_SIZE = 8192
MAX_SET_HEADER_SIZE = 4096
MAX_CCA_SIZE = 32768
MAX_PEER_CHAIN = 8
MAX_FORWARDED_SIZE = 65536

_BEARER = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] +([^ ]+)")
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----"
)


@dataclass(frozen=True, slots=True)
class RawCredentials:
    """What a request presented, read but not yet verified."""

    access_token: str | None
    cca: str | None
    set_header_values: tuple[str, ...]
    peer_chain: tuple[bytes, ...] | None


class CredentialReader:
    """Pulls the raw credentials from requests, for one configured set of sources."""

    def __init__(
        self,
        *,
        set_header: str,
        peer_cert: str,
        trusted_proxies: Sequence[object] = (),
    ) -> None:
        self.set_header = set_header.lower().encode("latin-1")
        self.peer_cert = peer_cert
        self.trusted_proxies = tuple(trusted_proxies)
        self._pem_cache: dict[tuple[str, ...], tuple[bytes, ...]] = {}

    def read(self, scope: Scope) -> RawCredentials:
        """Return the request's credentials, or raise the rejection its headers deserve."""
        authorization: list[bytes] = []
        cca: list[bytes] = []
        set_values: list[bytes] = []
        forwarded: dict[bytes, list[bytes]] = {}
        set_size = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value)
            elif name == CCA_HEADER:
                cca.append(value)
            elif name == self.set_header:
                set_size += len(value) + 1
                if set_size > MAX_SET_HEADER_SIZE:
                    raise InvalidRequest(f"the {self.set_header.decode()} header is too large")
                set_values.append(value)
            elif name in (b"x-forwarded-client-cert", b"client-cert", b"client-cert-chain"):
                forwarded.setdefault(name, []).append(value)

        return RawCredentials(
            access_token=_access_token(authorization),
            cca=_cca(cca),
            set_header_values=tuple(_ascii(value, self.set_header) for value in set_values),
            peer_chain=self._peer_chain(scope, forwarded),
        )

    def _peer_chain(
        self, scope: Scope, forwarded: dict[bytes, list[bytes]]
    ) -> tuple[bytes, ...] | None:
        if self.peer_cert == "none":
            return None
        if self.peer_cert == "tls":
            tls = scope.get("extensions", {}).get("tls") or {}
            pem_chain = tls.get("client_cert_chain") or ()
            if not isinstance(pem_chain, (list, tuple)):
                raise PeerCertificateInvalid("the server passed a malformed certificate chain")
            return self._der_chain(tuple(pem_chain)) if pem_chain else None

        client = scope.get("client")
        if not is_trusted_proxy(client[0] if client else None, self.trusted_proxies):
            return None
        try:
            if self.peer_cert == "xfcc":
                values = [v.decode("latin-1") for v in
                          forwarded.get(b"x-forwarded-client-cert", ())]
                if sum(map(len, values)) > MAX_FORWARDED_SIZE:
                    raise ForwardedCertificateError("the forwarded certificate is too large")
                chain = chain_from_xfcc(values) if values else None
            else:
                chain = chain_from_client_cert(
                    [v.decode("latin-1") for v in forwarded.get(b"client-cert", ())],
                    [v.decode("latin-1") for v in
                     forwarded.get(b"client-cert-chain", ())],
                )
        except ForwardedCertificateError as error:
            raise PeerCertificateInvalid(f"the forwarded client certificate: {error}") from None
        if chain is not None and len(chain) > MAX_PEER_CHAIN:
            raise PeerCertificateInvalid("the peer certificate chain is too long")
        return tuple(chain) if chain else None

    def _der_chain(self, pem_chain: tuple[str, ...]) -> tuple[bytes, ...]:
        if not all(isinstance(pem, str) for pem in pem_chain):
            raise PeerCertificateInvalid("the peer certificate is not PEM")
        cached = self._pem_cache.get(pem_chain)
        if cached is not None:
            return cached
        if len(pem_chain) > MAX_PEER_CHAIN:
            raise PeerCertificateInvalid("the peer certificate chain is too long")
        der_chain = []
        for pem in pem_chain:
            match = _PEM_CERTIFICATE.search(pem)
            if match is None:
                raise PeerCertificateInvalid("the peer certificate is not PEM")
            try:
                der_chain.append(base64.b64decode(match.group(1), validate=False))
            except (binascii.Error, ValueError):
                raise PeerCertificateInvalid("the peer certificate is not PEM") from None
        result = tuple(der_chain)
        if len(self._pem_cache) >= 1024:
            self._pem_cache.clear()
        self._pem_cache[pem_chain] = result
        return result


def _ascii(value: bytes, name: bytes) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequest(f"the {name.decode()} header is not ASCII") from None


def _access_token(values: list[bytes]) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("more than one Authorization header")
    value = values[0]
    if len(value) > MAX_AUTHORIZATION_SIZE:
        raise InvalidRequest("the Authorization header is too large")
    value = value.strip(b" \t")
    scheme = value.split(b" ", 1)[0]
    if scheme.lower() != b"bearer":
        return None
    match = _BEARER.fullmatch(value)
    if match is None:
        raise InvalidRequest("the Authorization header is not 'Bearer <token>'")
    return _ascii(match.group(1), b"authorization")


def _cca(values: list[bytes]) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("more than one 3gpp-Sbi-Client-Credentials header")
    if len(values[0]) > MAX_CCA_SIZE:
        raise CcaVerificationFailure("the client credentials assertion is too large")
    try:
        return values[0].strip(b" \t").decode("ascii")
    except UnicodeDecodeError:
        raise CcaVerificationFailure("the client credentials assertion is not ASCII") from None
