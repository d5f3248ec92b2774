"""`sbi-setauth inspect`: shows what an access token, a CCA and a peer certificate contain, what
verified, and what the producer would decide for a request carrying them.

Contents are decoded before anything is verified, so a broken credential can still be read. The
decision comes from running `SetAuthMiddleware` itself on a request built from the inputs; no
token, CCA or key material is printed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime
import json
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import core as asn1
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .cca import CcaVerifier
from .certificates import CertificateError, CertificateVerifier, TrustStore
from .decision import VerifiedConsumer
from .identifiers import IdentifierError, nf_set_id_from_fqdn
from .jws import JwsError, load_json_object, parse_compact
from .keys import KeyFileError, NrfKeys
from .leases.memory import MemoryLeaseStore
from .middleware import CONSUMER_SCOPE_KEY, SetAuthMiddleware
from .rejections import Rejection
from .settings import ENV_PREFIX, Settings, SettingsError
from .testing import asgi_request
from .tokens import AccessTokenVerifier

__all__ = [
    "Inspection",
    "inspect_credentials",
    "read_env_file",
    "settings_from",
    "MAX_INPUT_SIZE",
]

MAX_INPUT_SIZE = 65536
MAX_ENV_FILE_SIZE = 65536
_NF_TYPES_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.34")


class _NfTypes(asn1.SequenceOf):
    _child_spec = asn1.IA5String


@dataclass
class Inspection:
    """The report of one inspection and the decision it ends with."""

    lines: list[str] = field(default_factory=list)
    status: int | None = None
    cause: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the producer would let the request through."""
        return self.status is not None and self.status < 400

    @property
    def exit_code(self) -> int:
        """0 when accepted, 1 when rejected, 2 when no decision could be made."""
        if self.status is None:
            return 2
        return 0 if self.accepted else 1

    def add(self, line: str = "") -> None:
        """Append one line to the report."""
        self.lines.append(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read `NAME=VALUE` lines (blank lines, `#` comments, `export` and quotes allowed)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_ENV_FILE_SIZE + 1)
    if len(text) > MAX_ENV_FILE_SIZE:
        raise ValueError(f"{path} is larger than {MAX_ENV_FILE_SIZE} bytes")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise ValueError(f"{path}:{number}: expected NAME=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def _time(value: Any, now: float) -> str:
    if type(value) is not int:
        return repr(value)
    moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    delta = value - now
    relative = f"in {delta:.0f} s" if delta >= 0 else f"{-delta:.0f} s ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({relative})"


def _decode(value: str, report: Inspection) -> dict[str, Any] | None:
    try:
        parsed = parse_compact(value, max_size=MAX_INPUT_SIZE)
        claims = load_json_object(parsed.payload)
    except JwsError as error:
        report.add(f"  cannot be decoded: {error}")
        return None
    header = dict(parsed.header)
    x5c = header.pop("x5c", None)
    report.add(f"  header: {json.dumps(header, sort_keys=True)}")
    if x5c is not None:
        count = len(x5c) if isinstance(x5c, list) else "malformed"
        report.add(f"  header x5c: {count} certificate(s), shown under CCA signer below")
    report.add(f"  claims: {json.dumps(claims, sort_keys=True)}")
    now = time.time()
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            report.add(f"  {name}: {_time(claims[name], now)}")
    return {"header": parsed.header, "claims": claims}


def _certificate_lines(pem_or_der: Sequence[bytes], report: Inspection, indent: str) -> None:
    for position, der in enumerate(pem_or_der):
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            report.add(f"{indent}[{position}] not a certificate")
            continue
        report.add(f"{indent}[{position}] subject: {certificate.subject.rfc4514_string()}")
        report.add(f"{indent}    issuer: {certificate.issuer.rfc4514_string()}")
        report.add(
            f"{indent}    valid: {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except (x509.ExtensionNotFound, ValueError):
            san = None
        if san is not None:
            uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
            dns_names = san.value.get_values_for_type(x509.DNSName)
            critical = "critical" if san.critical else "NOT critical"
            report.add(f"{indent}    subjectAltName ({critical}): URI {uris}, DNS {dns_names}")
            for name in dns_names:
                try:
                    nf_set_id = nf_set_id_from_fqdn(name)
                except IdentifierError as error:
                    report.add(f"{indent}    NF Set FQDN malformed: {error}")
                    continue
                if nf_set_id is not None:
                    report.add(f"{indent}    NF Set ID: {nf_set_id}")
        try:
            extension = certificate.extensions.get_extension_for_oid(_NF_TYPES_OID)
            nf_types = _NfTypes.load(extension.value.public_bytes()).native
            report.add(f"{indent}    nfTypes: {', '.join(map(str, nf_types))}")
        except x509.ExtensionNotFound:
            report.add(f"{indent}    nfTypes: none")
        except (ValueError, TypeError):
            report.add(f"{indent}    nfTypes: malformed")


class _Verifiers:
    """The verifiers the middleware would build from `settings`, or why one cannot be built."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.access_tokens: AccessTokenVerifier | None = None
        self.certificates: CertificateVerifier | None = None
        self.ccas: CcaVerifier | None = None
        self.problems: list[str] = []
        try:
            keys = NrfKeys.from_files(settings.nrf_keys)
            self.access_tokens = AccessTokenVerifier(settings, keys, clock=clock)
        except KeyFileError as error:
            self.problems.append(f"{ENV_PREFIX}NRF_KEYS: {error}")
        if settings.trust_anchors:
            try:
                trust = TrustStore.from_files(settings.trust_anchors, settings.revocation_lists)
            except ValueError as error:
                self.problems.append(f"{ENV_PREFIX}TRUST_ANCHORS: {error}")
                return
            self.certificates = CertificateVerifier(trust, clock=clock)
            self.ccas = CcaVerifier(
                self.certificates,
                producer_nf_type=settings.nf_type,
                set_claim=settings.set_claim,
                clock_skew=settings.clock_skew,
                max_age=settings.cca_max_age,
                clock=clock,
            )


def _pem_chain(pem: bytes) -> list[bytes]:
    certificates = x509.load_pem_x509_certificates(pem)
    return [certificate.public_bytes(serialization.Encoding.DER) for certificate in certificates]


def _consumer_lines(consumer: VerifiedConsumer) -> list[str]:
    return [
        f"  consumer NF instance: {consumer.nf_instance_id} "
        f"(proven by {consumer.nf_instance_id_proof})",
        f"  consumer NF Set: {consumer.nf_set_id or '-'} "
        f"(carried by {', '.join(consumer.nf_set_id_proofs) or 'nothing'})",
        f"  consumer NF type: {consumer.nf_type or '-'}",
        f"  token: {'set token' if consumer.set_token else 'instance token'}, "
        f"scopes {' '.join(sorted(consumer.scopes))}",
        f"  via SCP: {consumer.via_scp or 'no'}",
    ]


def _decide(
    settings: Settings,
    *,
    access_token: str | None,
    cca: str | None,
    peer_chain_pem: Sequence[str] | None,
    method: str,
    path: str,
    set_header: str | None,
    clock: Callable[[], float],
) -> tuple[int, str | None, str, VerifiedConsumer | None]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["consumer"] = scope.get(CONSUMER_SCOPE_KEY)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # A fresh memory store stands in for HOLDER_STORE: another instance's live lease is unknown.
    middleware = SetAuthMiddleware(
        app, settings=settings, clock=clock, lease_store=MemoryLeaseStore(clock=clock)
    )
    headers: list[tuple[str, str]] = []
    if access_token is not None:
        headers.append(("authorization", f"Bearer {access_token}"))
    if cca is not None:
        headers.append(("3gpp-sbi-client-credentials", cca))
    if set_header is not None:
        headers.append((settings.set_header, set_header))
    answer = asyncio.run(
        asgi_request(
            middleware,
            path,
            method=method,
            headers=headers,
            peer=list(peer_chain_pem) if peer_chain_pem else None,
            client=("127.0.0.1", 0),
            host="producer.invalid",
        )
    )
    status, body = answer.status, answer.body
    if status >= 400:
        problem = json.loads(body)
        return status, problem.get("cause"), problem.get("detail", ""), None
    return status, None, "", seen.get("consumer")


def inspect_credentials(
    *,
    settings: Settings | None,
    access_token: str | None = None,
    cca: str | None = None,
    peer_certificate_pem: bytes | None = None,
    method: str = "GET",
    path: str | None = None,
    set_header: str | None = None,
    settings_problem: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Inspection:
    """Decode, verify and decide on the given credentials as the producer `settings` would.

    `set_header` is the value of the configured set header; with `3gpp-Sbi-Binding`, a bare
    NF Set ID is sent as `bl=nf-set; nfset=<it>`. Without settings only the contents are shown.
    """
    report = Inspection()
    verifiers = _Verifiers(settings, clock) if settings is not None else None
    if settings is None:
        report.add(f"Settings: none ({settings_problem or 'not given'}); nothing is verified")
    else:
        report.add(
            f"Settings: producer {settings.nf_type} {settings.nf_instance_id}, services "
            f"{', '.join(settings.services)}, PEER_CERT={settings.peer_cert}, "
            f"SET_CLAIM={settings.set_claim}, SET_HEADER={settings.set_header}"
        )
        for problem in verifiers.problems if verifiers else ():
            report.add(f"  problem: {problem}")

    peer_chain_der: list[bytes] | None = None
    if peer_certificate_pem is not None:
        report.add()
        report.add("Peer certificate")
        try:
            peer_chain_der = _pem_chain(peer_certificate_pem)
        except ValueError:
            report.add("  not a PEM certificate chain")
        if peer_chain_der:
            _certificate_lines(peer_chain_der, report, "  ")
            if verifiers is not None and verifiers.certificates is not None:
                try:
                    verified = verifiers.certificates.verify(peer_chain_der)
                    report.add(
                        "  verified: chain to a trust anchor, clientAuth, profile; NF instance "
                        f"{verified.nf_instance_id or '-'}, NF Set {verified.nf_set_id or '-'}, "
                        f"nfTypes {', '.join(verified.nf_types) or '-'}"
                    )
                except CertificateError as error:
                    report.add(f"  NOT verified: {error}")

    if access_token is not None:
        report.add()
        report.add("Access token")
        _decode(access_token, report)
        if verifiers is not None and verifiers.access_tokens is not None:
            try:
                verified_token = verifiers.access_tokens.verify(access_token)
                kind = "set token" if verified_token.is_set_token else "instance token"
                report.add(
                    "  verified: signature with a configured NRF key, issuer, audience, "
                    f"producer claims, time claims; {kind}"
                )
            except Rejection as rejection:
                report.add(f"  NOT verified: {rejection.cause}: {rejection.detail}")

    if cca is not None:
        report.add()
        report.add("CCA")
        decoded = _decode(cca, report)
        x5c = decoded["header"].get("x5c") if decoded else None
        if isinstance(x5c, list):
            report.add("  CCA signer (x5c)")
            chain = []
            for entry in x5c[:8]:
                try:
                    chain.append(base64.b64decode(str(entry), validate=True))
                except (binascii.Error, ValueError):
                    chain.append(b"")
            _certificate_lines(chain, report, "    ")
        if verifiers is not None and verifiers.ccas is not None:
            try:
                verified_cca = verifiers.ccas.verify(cca)
                report.add(
                    "  verified: signature with the x5c leaf key, chain, aud, time claims, sub "
                    f"= signer's NF instance; NF Set claim {verified_cca.nf_set_id or '-'}"
                )
            except Rejection as rejection:
                report.add(f"  NOT verified: {rejection.cause}: {rejection.detail}")
        elif verifiers is not None:
            report.add("  not verified: no TRUST_ANCHORS configured")

    if settings is None or (verifiers is not None and verifiers.problems):
        return report

    if settings.peer_cert in ("xfcc", "client-cert"):
        settings = dataclasses.replace(settings, peer_cert="tls")
        report.add()
        report.add("(the peer certificate is given directly, so PEER_CERT is taken as tls)")
    if path is None:
        path = f"/{settings.services[0]}/v1/"
    if (
        set_header is not None
        and settings.set_header == "3gpp-sbi-binding"
        and not set_header.lstrip().lower().startswith("bl")
    ):
        set_header = f"bl=nf-set; nfset={set_header.strip()}"
    peer_pem = None
    if peer_chain_der:
        peer_pem = [ssl.DER_cert_to_PEM_cert(der) for der in peer_chain_der]

    status, cause, detail, consumer = _decide(
        settings,
        access_token=access_token,
        cca=cca,
        peer_chain_pem=peer_pem,
        method=method.upper(),
        path=path,
        set_header=set_header,
        clock=clock,
    )
    report.status, report.cause = status, cause
    report.add()
    report.add(f"Decision for {method.upper()} {path}")
    if cause is None:
        report.add(f"  ACCEPTED ({status})")
        if consumer is not None:
            for line in _consumer_lines(consumer):
                report.add(line)
    else:
        report.add(f"  REJECTED: {status} {cause}: {detail}")
    return report


def settings_from(
    environ: Mapping[str, str], env_file: str | None
) -> tuple[Settings | None, str | None]:
    """Build settings from `environ`, overlaid with `env_file`; return (None, why) on failure."""
    values = dict(environ)
    if env_file is not None:
        try:
            values.update(read_env_file(env_file))
        except (OSError, ValueError) as error:
            return None, str(error)
    try:
        return Settings.from_env(values), None
    except SettingsError as error:
        return None, str(error)
