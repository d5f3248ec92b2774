"""A small test PKI and token mint for 5G Core NFs: operator CAs, NF certificates, CCAs and NRF
access tokens built from real keys, so tests of a producer stay a few lines long.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import core as asn1
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = ["CA", "NfCertificate", "Nrf", "NF_TYPES_OID", "AsgiAnswer", "asgi_request", "sign_jws"]

NF_TYPES_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.34")
"""The nfTypes certificate extension (RFC 9310): SEQUENCE OF IA5String."""

_OWN_SET: Any = object()
_SET_DOMAIN = ".3gppnetwork.org"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


class _NfTypes(asn1.SequenceOf):
    _child_spec = asn1.IA5String


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key(key_type: str) -> CertificateIssuerPrivateKeyTypes:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key_type {key_type!r}; use 'ec', 'ec384', 'rsa' or 'ed25519'")


def _signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.HashAlgorithm | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _natural_alg(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("unsupported signing key type")


def _can_sign(key: Any, alg: str) -> bool:
    if alg == "none" or alg.startswith("HS"):
        return True
    if isinstance(key, rsa.RSAPrivateKey):
        return alg[:2] in ("RS", "PS") and alg[2:] in _HASHES
    return alg == _natural_alg(key)


def _signature(key: Any, alg: str, signing_input: bytes) -> bytes:
    if alg == "none":
        return b""
    if alg.startswith("HS"):
        secret = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hmac.new(secret, signing_input, getattr(hashlib, "sha" + alg[2:])).digest()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(signing_input)
    digest = _HASHES[alg[2:]]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return key.sign(signing_input, pss, digest)
    return key.sign(signing_input, padding.PKCS1v15(), digest)


def _merged(base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for name, value in (overrides or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def sign_jws(
    payload: Mapping[str, Any] | bytes,
    private_key: Any,
    *,
    header: Mapping[str, Any] | None = None,
    alg: str | None = None,
) -> str:
    """Return a JWS compact serialization of `payload` signed with `private_key`.

    `alg` is what the header says (the key's own algorithm by default). The signature uses it
    when the key can (`none` gives an empty signature, `HS*` uses the public key PEM as the
    secret); otherwise the key's own algorithm signs, giving a deliberately mismatched token.
    `header` entries are added or replace the defaults; a None value removes one.
    """
    header_alg = alg or _natural_alg(private_key)
    sign_alg = header_alg if _can_sign(private_key, header_alg) else _natural_alg(private_key)
    full_header = _merged({"alg": header_alg, "typ": "JWT"}, header)
    body = payload if isinstance(payload, bytes) else json.dumps(dict(payload)).encode()
    signing_input = (
        _b64url(json.dumps(full_header, separators=(",", ":")).encode()) + "." + _b64url(body)
    ).encode("ascii")
    return signing_input.decode("ascii") + "." + _b64url(
        _signature(private_key, sign_alg, signing_input)
    )


class CA:
    """An operator certificate authority: a self-signed root, or an intermediate of another CA."""

    def __init__(
        self,
        *,
        organization: str = "Test Operator",
        country: str = "FI",
        key_type: str = "ec",
        common_name: str | None = None,
        parent: CA | None = None,
        path_length: int | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        private_key: CertificateIssuerPrivateKeyTypes | None = None,
    ) -> None:
        self.organization = organization
        self.country = country
        self.private_key = private_key or _new_key(key_type)
        self.parent = parent
        kind = "Intermediate CA" if parent else "Root CA"
        self.subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(
                    NameOID.COMMON_NAME,
                    common_name or f"{organization} {kind} {secrets.token_hex(4)}",
                ),
            ]
        )
        now = _utcnow()
        issuer_name = parent.subject if parent else self.subject
        issuer_key = parent.private_key if parent else self.private_key
        public_key = self.private_key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(days=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                False,
            )
        )
        self.certificate: x509.Certificate = builder.sign(issuer_key, _signature_hash(issuer_key))
        self.cert_pem: bytes = _pem(self.certificate)

    @property
    def chain(self) -> list[x509.Certificate]:
        """This CA's certificate and those of the CAs above it, excluding the root."""
        if self.parent is None:
            return []
        return [self.certificate, *self.parent.chain]

    def write_pem(self, path: str | os.PathLike[str]) -> Path:
        """Write this CA's certificate as a PEM trust anchor file and return its path."""
        target = Path(path)
        target.write_bytes(self.cert_pem)
        return target

    def issue_intermediate(self, **options: Any) -> CA:
        """Return an intermediate CA whose certificate this CA signs (same options as CA())."""
        options.setdefault("organization", self.organization)
        options.setdefault("country", self.country)
        return CA(parent=self, **options)

    def issue_nf_certificate(
        self,
        nf_instance_id: str | None = None,
        *,
        nf_type: str = "AMF",
        nf_set_id: str | None = None,
        fqdn: str | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        client_auth: bool = True,
        server_auth: bool = True,
        is_ca: bool = False,
        extra_dns: Sequence[str] = (),
        key_type: str = "ec",
        ip_addresses: Sequence[str] = (),
        nf_types: Sequence[str] | None = None,
        extra_uris: Sequence[str] = (),
        urn_uuid: bool = True,
        san: bool = True,
        san_critical: bool = True,
        extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
        private_key: CertificateIssuerPrivateKeyTypes | None = None,
    ) -> NfCertificate:
        """Issue an NF certificate following the TS 33.310 6.1.3c profile.

        The subject has C, O and CN; the critical subjectAltName holds `urn:uuid:<nf_instance_id>`
        (a random UUID when None), the NF FQDN and, with `nf_set_id`, the NF Set FQDN; the nfTypes
        extension holds `nf_types` (default: `nf_type`; empty omits it). The remaining knobs build
        certificates that break the profile on purpose.
        """
        nf_instance_id = nf_instance_id or str(uuid.uuid4())
        fqdn = fqdn or f"{nf_instance_id}.{nf_type.lower()}.5gc.mnc001.mcc001{_SET_DOMAIN}"
        key = private_key or _new_key(key_type)
        public_key = key.public_key()
        now = _utcnow()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.COMMON_NAME, fqdn[:64]),
            ]
        )
        uris = [f"urn:uuid:{nf_instance_id}"] if urn_uuid else []
        names: list[x509.GeneralName] = [
            *(x509.UniformResourceIdentifier(uri) for uri in [*uris, *extra_uris]),
            x509.DNSName(fqdn),
        ]
        if nf_set_id is not None:
            names.append(x509.DNSName(nf_set_id + _SET_DOMAIN))
        names.extend(x509.DNSName(name) for name in extra_dns)
        names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(hours=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=is_ca,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), san_critical)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else []
        usages += [ExtendedKeyUsageOID.SERVER_AUTH] if server_auth else []
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), False)
        types = [nf_type.upper()] if nf_types is None else list(nf_types)
        if types:
            value = _NfTypes(types).dump()
            builder = builder.add_extension(x509.UnrecognizedExtension(NF_TYPES_OID, value), False)
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical)
        certificate = builder.sign(self.private_key, _signature_hash(self.private_key))
        return NfCertificate(
            nf_instance_id=nf_instance_id,
            nf_type=nf_type.upper(),
            nf_set_id=nf_set_id,
            fqdn=fqdn,
            certificate=certificate,
            private_key=key,
            issuer=self,
        )

    def crl(
        self,
        revoked: Sequence[NfCertificate | x509.Certificate] = (),
        *,
        next_update: datetime.datetime | None = None,
        last_update: datetime.datetime | None = None,
        signing_key: CertificateIssuerPrivateKeyTypes | None = None,
    ) -> bytes:
        """Return a PEM CRL from this CA revoking `revoked` (signed by `signing_key` if given)."""
        now = _utcnow()
        key = signing_key or self.private_key
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.subject)
            .last_update(last_update or now - datetime.timedelta(minutes=5))
            .next_update(next_update or now + datetime.timedelta(days=7))
            .add_extension(x509.CRLNumber(secrets.randbelow(2**32)), False)
        )
        for item in revoked:
            certificate = item.certificate if isinstance(item, NfCertificate) else item
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(certificate.serial_number)
                .revocation_date(now - datetime.timedelta(minutes=1))
                .build()
            )
        crl = builder.sign(key, _signature_hash(key))
        return crl.public_bytes(serialization.Encoding.PEM)


class NfCertificate:
    """An NF's certificate, private key and chain, able to mint its own CCAs."""

    def __init__(
        self,
        *,
        nf_instance_id: str,
        nf_type: str,
        nf_set_id: str | None,
        fqdn: str,
        certificate: x509.Certificate,
        private_key: CertificateIssuerPrivateKeyTypes,
        issuer: CA,
    ) -> None:
        self.nf_instance_id = nf_instance_id
        self.nf_type = nf_type
        self.nf_set_id = nf_set_id
        self.fqdn = fqdn
        self.certificate = certificate
        self.private_key = private_key
        self.issuer = issuer
        self.cert_pem: bytes = _pem(certificate)
        self.key_pem: bytes = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def chain(self) -> list[x509.Certificate]:
        """Leaf first, then the intermediates up to (excluding) the root."""
        return [self.certificate, *self.issuer.chain]

    @property
    def chain_der(self) -> list[bytes]:
        """The chain as DER, leaf first."""
        return [cert.public_bytes(serialization.Encoding.DER) for cert in self.chain]

    @property
    def chain_pem(self) -> list[str]:
        """The chain as PEM strings, leaf first, as the ASGI TLS extension carries it."""
        return [_pem(cert).decode("ascii") for cert in self.chain]

    def write_cert_and_key(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write the chain (leaf first) and the private key as PEM files for a TLS endpoint."""
        base = Path(directory) / f"{self.nf_type.lower()}-{self.nf_instance_id}"
        cert_path = base.with_name(base.name + ".pem")
        key_path = base.with_name(base.name + "-key.pem")
        cert_path.write_text("".join(self.chain_pem))
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path

    def cca(
        self,
        *,
        aud: Sequence[str] | str = ("UDM",),
        sub: str | None = None,
        lifetime: int = 60,
        iat: int | None = None,
        exp: int | None = None,
        nf_set_id: str | None = _OWN_SET,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        x5c: Sequence[bytes] | None = None,
        signing_key: Any = None,
        set_claim: str = "consumerNfSetId",
        alg: str | None = None,
    ) -> str:
        """Mint a Client Credentials Assertion signed with this certificate's key.

        The header carries `x5c` (standard base64 DER, leaf first). By default the set claim is
        this certificate's NF Set ID; None leaves it out. A string `aud` stays a string. `claims`
        and `header` entries are added or replace the defaults; a None value removes one.
        """
        issued_at = int(_utcnow().timestamp()) if iat is None else iat
        payload: dict[str, Any] = {
            "sub": self.nf_instance_id if sub is None else sub,
            "aud": aud if isinstance(aud, str) else list(aud),
            "iat": issued_at,
            "exp": issued_at + lifetime if exp is None else exp,
        }
        set_id = self.nf_set_id if nf_set_id is _OWN_SET else nf_set_id
        if set_id is not None:
            payload[set_claim] = set_id
        certificates = self.chain_der if x5c is None else list(x5c)
        x5c_values = [base64.b64encode(der).decode("ascii") for der in certificates]
        return sign_jws(
            _merged(payload, claims),
            signing_key or self.private_key,
            header={"x5c": x5c_values, **(header or {})},
            alg=alg,
        )


class Nrf:
    """An NRF that issues OAuth 2.0 access tokens (TS 29.510 AccessTokenClaims)."""

    def __init__(
        self,
        nrf_instance_id: str | None = None,
        *,
        key_type: str = "ec",
        kid: str = "nrf-key-1",
    ) -> None:
        self.nrf_instance_id = nrf_instance_id or str(uuid.uuid4())
        self.kid = kid
        self.private_key = _new_key(key_type)
        self.alg = _natural_alg(self.private_key)
        self.public_key: PublicKeyTypes = self.private_key.public_key()
        self.public_key_pem: bytes = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self) -> dict[str, Any]:
        """The NRF's public key as a JWK Set."""
        if isinstance(self.public_key, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        elif isinstance(self.public_key, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return {"keys": [jwk]}

    def write_jwks(self, path: str | os.PathLike[str]) -> Path:
        """Write the JWK Set to `path` and return it."""
        target = Path(path)
        target.write_text(json.dumps(self.jwks()))
        return target

    def access_token(
        self,
        *,
        sub: str,
        aud: str | Sequence[str],
        scope: str,
        lifetime: int = 600,
        iat: int | None = None,
        exp: int | None = None,
        nf_set_id: str | None = None,
        set_claim: str = "consumerNfSetId",
        jti: str | None = None,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        """Mint an access token for consumer `sub`; `nf_set_id` makes it a set token.

        `claims` and `header` entries are added or replace the defaults; a None value removes
        one. `alg` changes the header's algorithm (see `sign_jws`).
        """
        issued_at = int(_utcnow().timestamp()) if iat is None else iat
        payload: dict[str, Any] = {
            "iss": self.nrf_instance_id,
            "sub": sub,
            "aud": aud if isinstance(aud, str) else list(aud),
            "scope": scope,
            "iat": issued_at,
            "exp": issued_at + lifetime if exp is None else exp,
            "jti": jti or str(uuid.uuid4()),
        }
        if nf_set_id is not None:
            payload[set_claim] = nf_set_id
        return sign_jws(
            _merged(payload, claims),
            self.private_key,
            header={"kid": self.kid, **(header or {})},
            alg=alg,
        )


def _raw_header(item: tuple[str | bytes, str | bytes]) -> tuple[bytes, bytes]:
    name, value = item
    if isinstance(name, str):
        name = name.lower().encode("latin-1")
    if isinstance(value, str):
        value = value.encode("latin-1")
    return name, value


@dataclass(frozen=True, slots=True)
class AsgiAnswer:
    """What a client sees of one request made with `asgi_request`."""

    status: int
    headers: dict[str, str]
    body: bytes
    body_read: bool

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def cause(self) -> str | None:
        """The ProblemDetails `cause` of a rejection, None for any other answer."""
        if self.headers.get("content-type") != "application/problem+json":
            return None
        return self.json().get("cause")


async def asgi_request(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] = (),
    peer: NfCertificate | Sequence[str] | None = None,
    client: tuple[str, int] = ("127.0.0.1", 40000),
    query: bytes = b"",
    body: bytes = b"",
    host: str = "localhost",
) -> AsgiAnswer:
    """Call an ASGI app with one HTTP/2 request, as a TLS server would, and return the answer.

    Header names are lower-cased; bytes pass unchanged, for raw or hostile headers. `peer` is the
    TLS client certificate the server verified: an `NfCertificate` or a list of PEM strings,
    placed in the ASGI TLS extension. `body_read` tells whether the app asked for
    the request body (a rejected request's body must never be read).
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", host.encode("latin-1"))] + [_raw_header(item) for item in items],
        "client": client,
        "server": ("127.0.0.1", 443),
        "extensions": {},
    }
    if peer is not None:
        chain = peer.chain_pem if isinstance(peer, NfCertificate) else list(peer)
        scope["extensions"]["tls"] = {"client_cert_chain": chain}

    body_read = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        body_read = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers = {
        name.decode("latin-1"): value.decode("latin-1") for name, value in start["headers"]
    }
    return AsgiAnswer(start["status"], answer_headers, content, body_read)
