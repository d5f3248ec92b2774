"""The ASGI entry point: verifies every request before the producer's handler runs.

A rejected request is answered here; the application is never called and the request body is
never read. An accepted request reaches the application with the verified consumer attached.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Receive, Scope, Send

from .cca import CcaVerifier, VerifiedCca
from .certificates import CertificateError, CertificateVerifier, TrustStore, VerifiedCertificate
from .credentials import CredentialReader, RawCredentials
from .decision import VerifiedConsumer, decide
from .forwarded import parse_trusted_proxies
from .identifiers import IdentifierError, normalize_nf_set_id, parse_binding_nf_set
from .keys import KeyFileError, NrfKeys
from .leases import LeaseStore, StoreUnavailable, open_lease_store
from .operations import OperationScopes
from .rejections import (
    AccessTokenMissing,
    CcaVerificationFailure,
    InsufficientScope,
    InvalidRequest,
    PeerCertificateInvalid,
    Rejection,
    SetTokenInUse,
    HolderStoreUnavailable,
    render_rejection,
)
from .settings import Settings, SettingsError
from .tokens import AccessTokenVerifier

__all__ = ["SetAuthMiddleware", "ConsumerUser", "CONSUMER_SCOPE_KEY"]

logger = logging.getLogger(__name__)

CONSUMER_SCOPE_KEY = "sbi_setauth.consumer"
_AUTHORITY = re.compile(
    r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"
)
_SCOPE_TOKEN = re.compile(r"[A-Za-z0-9_:-]{1,64}")
_API_PATH = re.compile(r"/[A-Za-z0-9_-]{1,64}(/v[0-9]{1,3})?")


class ConsumerUser(BaseUser):
    """The consumer NF as Starlette's `request.user`."""

    def __init__(self, consumer: VerifiedConsumer) -> None:
        self.consumer = consumer

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.consumer.nf_instance_id

    @property
    def identity(self) -> str:
        return self.consumer.nf_instance_id


class SetAuthMiddleware:
    """Producer-side verification of access tokens, CCAs, certificates and NF Set IDs."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        lease_store: LeaseStore | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock

        try:
            keys = NrfKeys.from_files(settings.nrf_keys)
        except KeyFileError as error:
            raise SettingsError("NRF_KEYS", str(error)) from None
        self.access_tokens = AccessTokenVerifier(settings, keys, clock=clock)

        self.certificates: CertificateVerifier | None = None
        self.ccas: CcaVerifier | None = None
        if settings.trust_anchors:
            try:
                trust = TrustStore.from_files(settings.trust_anchors, settings.revocation_lists)
            except ValueError as error:
                raise SettingsError("TRUST_ANCHORS", str(error)) from None
            self.certificates = CertificateVerifier(trust, clock=clock)
            self.ccas = CcaVerifier(
                self.certificates,
                producer_nf_type=settings.nf_type,
                set_claim=settings.set_claim,
                clock_skew=settings.clock_skew,
                max_age=settings.cca_max_age,
                clock=clock,
            )

        try:
            trusted_proxies = parse_trusted_proxies(",".join(settings.trusted_proxies))
        except ValueError as error:
            raise SettingsError("TRUSTED_PROXIES", str(error)) from None
        self.credentials = CredentialReader(
            set_header=settings.set_header,
            peer_cert=settings.peer_cert,
            trusted_proxies=trusted_proxies,
        )

        self.operation_scopes: OperationScopes | None = None
        if settings.operation_scopes is not None:
            try:
                self.operation_scopes = OperationScopes.from_file(settings.operation_scopes)
            except ValueError as error:
                raise SettingsError("OPERATION_SCOPES", str(error)) from None

        self.services = frozenset(settings.services)
        self.exempt_paths = settings.exempt_paths
        self.trusted_scps = frozenset(settings.trusted_scps)
        self.is_binding_header = settings.set_header == "3gpp-sbi-binding"
        self.lease_store: LeaseStore | None = None
        if settings.exclusive_use:
            self.lease_store = lease_store or open_lease_store(settings.holder_store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return

        known: dict[str, str] = {}
        try:
            consumer = await self._verify(scope, known)
        except Rejection as rejection:
            self._log_rejection(rejection, scope, known)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            status, headers, body = render_rejection(rejection, _realm(scope))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "accepted %s %r instance=%s set=%s",
                scope.get("method", "GET"),
                scope["path"][:200],
                consumer.nf_instance_id,
                consumer.nf_set_id,
            )
        scope[CONSUMER_SCOPE_KEY] = consumer
        scope.setdefault("state", {})["consumer"] = consumer
        scope["auth"] = AuthCredentials(sorted(consumer.scopes))
        scope["user"] = ConsumerUser(consumer)
        await self.app(scope, receive, send)

    async def _verify(self, scope: Scope, known: dict[str, str]) -> VerifiedConsumer:
        raw = self.credentials.read(scope)
        if raw.access_token is None:
            raise AccessTokenMissing("the request carries no bearer access token")
        request_nf_set_id = self._request_nf_set_id(raw)

        peer, via_scp = self._peer(raw, known)

        access_token = self.access_tokens.verify(raw.access_token)
        known.setdefault("instance", access_token.sub)
        if access_token.nf_set_id:
            known.setdefault("set", access_token.nf_set_id)
        service = _service(scope["path"])
        if service not in self.services:
            named = service if _SCOPE_TOKEN.fullmatch(service) else None
            raise InsufficientScope(f"this producer does not serve {service[:64]!r}", named)
        operation = None
        if self.operation_scopes is not None:
            operation = self.operation_scopes.lookup(
                scope.get("method", "GET"), service, scope["path"]
            )
        self.access_tokens.check_scope(access_token, service, operation)

        cca = self._cca(raw, required=via_scp is not None)

        consumer = decide(
            access_token=access_token,
            peer=None if via_scp else peer,
            via_scp=via_scp,
            cca=cca,
            request_nf_set_id=request_nf_set_id,
            require_set_proof=self.settings.require_set_proof,
        )
        known["instance"] = consumer.nf_instance_id
        if consumer.nf_set_id:
            known["set"] = consumer.nf_set_id

        if consumer.set_token and self.lease_store is not None:
            await self._take_lease(consumer)
        return consumer

    def _request_nf_set_id(self, raw: RawCredentials) -> str | None:
        values = raw.set_header_values
        try:
            if self.is_binding_header:
                return parse_binding_nf_set(values)
            distinct = {normalize_nf_set_id(value.strip()) for value in values if value.strip()}
            if len(distinct) > 1:
                raise InvalidRequest("the request names more than one consumer NF Set")
            return distinct.pop() if distinct else None
        except IdentifierError as error:
            raise InvalidRequest(f"the consumer NF Set ID in the request: {error}") from None

    def _peer(
        self, raw: RawCredentials, known: dict[str, str]
    ) -> tuple[VerifiedCertificate | None, str | None]:
        if self.settings.peer_cert == "none":
            return None, None
        if raw.peer_chain is None:
            raise PeerCertificateInvalid("the request came without a peer certificate")
        assert self.certificates is not None
        try:
            peer = self.certificates.verify(raw.peer_chain)
        except CertificateError as error:
            raise PeerCertificateInvalid(f"the peer certificate: {error}") from None
        if peer.nf_instance_id is None:
            raise PeerCertificateInvalid("the peer certificate names no NF instance")
        if peer.nf_instance_id in self.trusted_scps:
            return peer, peer.nf_instance_id
        known["instance"] = peer.nf_instance_id
        return peer, None

    def _cca(self, raw: RawCredentials, *, required: bool) -> VerifiedCca | None:
        if raw.cca is None:
            if required:
                raise CcaVerificationFailure("a CCA is required for requests through an SCP")
            if self.settings.require_cca:
                raise CcaVerificationFailure("a CCA is required and none was sent")
            return None
        if self.ccas is None:
            raise CcaVerificationFailure("CCAs cannot be verified: no TRUST_ANCHORS configured")
        return self.ccas.verify(raw.cca)

    async def _take_lease(self, consumer: VerifiedConsumer) -> None:
        assert self.lease_store is not None
        try:
            holds = await self.lease_store.acquire(
                consumer.token_key,
                consumer.nf_instance_id,
                idle_seconds=self.settings.holder_lease,
                expires_at=consumer.token_expires_at + self.settings.clock_skew,
            )
        except StoreUnavailable:
            if self.settings.store_failure == "open":
                logger.warning(
                    "lease store unavailable; accepting set token use by %s (STORE_FAILURE=open)",
                    consumer.nf_instance_id,
                )
                return
            raise HolderStoreUnavailable("the set-token lease store cannot be reached") from None
        if not holds:
            raise SetTokenInUse("another instance of the NF Set holds this set token")

    def _is_exempt(self, path: str) -> bool:
        if not self.exempt_paths or "/." in path or "//" in path:
            return False
        for prefix in self.exempt_paths:
            if path == prefix or path.startswith(prefix + "/") or prefix == "/":
                return True
        return False

    @staticmethod
    def _log_rejection(rejection: Rejection, scope: Scope, known: dict[str, str]) -> None:
        logger.info(
            "rejected %s %s %r instance=%s set=%s: %s",
            rejection.cause,
            scope.get("method", "-"),
            scope.get("path", "")[:200],
            known.get("instance", "-"),
            known.get("set", "-"),
            rejection.detail,
        )


def _service(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else ""


def _realm(scope: Scope) -> str:
    authority = ""
    for name, value in scope["headers"]:
        if name in (b"host", b":authority"):
            authority = value.decode("latin-1")
            break
    if not _AUTHORITY.fullmatch(authority):
        server: Any = scope.get("server")
        authority = f"{server[0]}:{server[1]}" if server else "localhost"
    match = _API_PATH.match(scope.get("path", ""))
    api = match.group(0) if match else ""
    return f"{scope.get('scheme', 'https')}://{authority}{api}"
