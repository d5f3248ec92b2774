"""An example NRF access token endpoint (TS 29.510 `POST /oauth2/token`) that issues set tokens.

The requester is authenticated by its TLS client certificate or, when it sends one, by its
Client Credentials Assertion. A consumer NF Set is granted only when that certificate carries it.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..cca import CcaVerifier
from ..certificates import CertificateError, CertificateVerifier, TrustStore, VerifiedCertificate
from ..identifiers import IdentifierError, normalize_nf_instance_id, normalize_nf_set_id
from ..rejections import Rejection
from ..testing import Nrf

__all__ = ["create_nrf_app", "TOKEN_PATH", "MAX_FORM_SIZE"]

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/token"
MAX_FORM_SIZE = 16384
MAX_FORM_FIELDS = 32
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_NF_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_SCOPE = re.compile(r"[a-zA-Z0-9_:-]+( [a-zA-Z0-9_:-]+)*")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _TokenError(Exception):
    """An AccessTokenErr answer (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _answer_error(error: _TokenError) -> JSONResponse:
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=400, headers=_NO_STORE)


async def _read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _TokenError("invalid_request", "the body must be application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_SIZE):
        raise _TokenError("invalid_request", f"the body is larger than {MAX_FORM_SIZE} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_SIZE:
            raise _TokenError("invalid_request", f"the body is larger than {MAX_FORM_SIZE} bytes")

    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise _TokenError("invalid_request", "the body is not a well-formed form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _TokenError("invalid_request", f"{name[:40]} appears more than once")
        form[name] = value
    return form


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise _TokenError("invalid_request", f"{name} is required")
    return value


def _nf_type(form: Mapping[str, str], name: str) -> str:
    value = _required(form, name)
    if not _NF_TYPE.fullmatch(value):
        raise _TokenError("invalid_request", f"{name} is not an NF type")
    return value


def _instance_id(value: str, name: str) -> str:
    try:
        return normalize_nf_instance_id(value)
    except IdentifierError:
        raise _TokenError("invalid_request", f"{name} is not an NF instance ID") from None


def _scope_allowed(scope: str, target_nf_type: str) -> bool:
    service = scope.split(":", 1)[0]
    return service.startswith("n" + target_nf_type.lower() + "-")


class _TokenEndpoint:
    """The `/oauth2/token` handler, with its verifiers built once."""

    def __init__(
        self,
        *,
        nrf: Nrf,
        trust_anchors: str | os.PathLike[str],
        token_lifetime: int,
        set_field: str,
        set_claim: str,
        allowed_scopes: Mapping[str, Collection[str]] | None,
        clock: Callable[[], float],
    ) -> None:
        if token_lifetime < 1:
            raise ValueError("token_lifetime must be at least one second")
        self.nrf = nrf
        self.token_lifetime = token_lifetime
        self.set_field = set_field
        self.set_claim = set_claim
        self.allowed_scopes = allowed_scopes
        self.clock = clock
        trust = TrustStore.from_files([trust_anchors])
        self.certificates = CertificateVerifier(trust, clock=clock)
        self.ccas = CcaVerifier(
            self.certificates, producer_nf_type="NRF", set_claim=set_claim, clock=clock
        )

    async def token(self, request: Request) -> JSONResponse:
        """Answer one AccessTokenReq with AccessTokenRsp or AccessTokenErr."""
        try:
            return self._issue(request, await _read_form(request))
        except _TokenError as error:
            logger.info("access token refused: %s (%s)", error.error, error.description)
            return _answer_error(error)

    def _issue(self, request: Request, form: dict[str, str]) -> JSONResponse:
        grant_type = _required(form, "grant_type")
        if grant_type != "client_credentials":
            raise _TokenError("unsupported_grant_type", "only client_credentials is supported")
        nf_instance_id = _instance_id(_required(form, "nfInstanceId"), "nfInstanceId")
        nf_type = _nf_type(form, "nfType")
        target_nf_type = _nf_type(form, "targetNfType")
        scope = _required(form, "scope")
        if len(scope) > 1024 or not _SCOPE.fullmatch(scope):
            raise _TokenError("invalid_scope", "scope is malformed")
        target_nf_instance_id = form.get("targetNfInstanceId")
        if target_nf_instance_id is not None:
            target_nf_instance_id = _instance_id(target_nf_instance_id, "targetNfInstanceId")
        requested_set: str | None = None
        if self.set_field in form:
            try:
                requested_set = normalize_nf_set_id(form[self.set_field])
            except IdentifierError:
                raise _TokenError("invalid_request", f"{self.set_field} is malformed") from None

        certificate, cca_set = self._requester(request, form, nf_instance_id)
        if nf_type not in certificate.nf_types:
            raise _TokenError("invalid_client", "nfType is not among the certificate's nfTypes")
        if requested_set is not None:
            if certificate.nf_set_id != requested_set:
                raise _TokenError("invalid_client", "the certificate does not carry that NF Set")
            if cca_set is not None and cca_set != requested_set:
                raise _TokenError("invalid_client", "the CCA names another NF Set")
        for item in scope.split(" "):
            if not self._allows(item, target_nf_type):
                raise _TokenError("invalid_scope", f"{item} is not offered by {target_nf_type}")

        access_token = self.nrf.access_token(
            sub=nf_instance_id,
            aud=[target_nf_instance_id] if target_nf_instance_id else target_nf_type,
            scope=scope,
            iat=int(self.clock()),
            lifetime=self.token_lifetime,
            nf_set_id=requested_set,
            set_claim=self.set_claim,
        )
        logger.info(
            "issued %s token to %s for %s, scope %s",
            "set" if requested_set else "instance",
            nf_instance_id,
            requested_set or target_nf_type,
            scope,
        )
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "scope": scope,
        }
        return JSONResponse(body, headers=_NO_STORE)

    def _requester(
        self, request: Request, form: Mapping[str, str], nf_instance_id: str
    ) -> tuple[VerifiedCertificate, str | None]:
        cca_values = request.headers.getlist("3gpp-sbi-client-credentials")
        if "client_assertion" in form:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise _TokenError("invalid_request", "client_assertion_type is not jwt-bearer")
            cca_values.append(form["client_assertion"])
        if len(cca_values) > 1:
            raise _TokenError("invalid_request", "more than one client credentials assertion")

        if cca_values:
            # Through an SCP the TLS peer is the SCP, so a CCA alone identifies the requester.
            try:
                cca = self.ccas.verify(cca_values[0])
            except Rejection as rejection:
                raise _TokenError("invalid_client", rejection.detail) from None
            if cca.nf_instance_id != nf_instance_id:
                raise _TokenError("invalid_client", "the CCA was signed by another NF instance")
            return cca.signer, cca.nf_set_id

        pem_chain = (request.scope.get("extensions", {}).get("tls") or {}).get(
            "client_cert_chain"
        )
        if not pem_chain:
            raise _TokenError("invalid_client", "no client certificate and no CCA")
        try:
            der_chain = [ssl.PEM_cert_to_DER_cert(pem) for pem in pem_chain[:9]]
            certificate = self.certificates.verify(der_chain)
        except (CertificateError, ValueError) as error:
            raise _TokenError("invalid_client", f"client certificate: {error}") from None
        if certificate.nf_instance_id != nf_instance_id:
            raise _TokenError("invalid_client", "nfInstanceId is not the certificate's instance")
        return certificate, None

    def _allows(self, scope: str, target_nf_type: str) -> bool:
        if self.allowed_scopes is None:
            return _scope_allowed(scope, target_nf_type)
        return scope in self.allowed_scopes.get(target_nf_type, ())


def create_nrf_app(
    *,
    nrf: Nrf,
    trust_anchors: str | os.PathLike[str],
    token_lifetime: int = 3600,
    set_field: str = "requesterNfSetId",
    set_claim: str = "consumerNfSetId",
    allowed_scopes: Mapping[str, Collection[str]] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Return a Starlette app answering `POST /oauth2/token` with tokens signed by `nrf`.

    Requester certificates (TLS or CCA signer) must chain to `trust_anchors`. A request naming a
    consumer NF Set in `set_field` gets a set token whose `set_claim` holds it. `allowed_scopes`
    maps a target NF type to the scopes it offers; by default a scope must name a service of
    that NF type (`nudm-...` for UDM).
    """
    endpoint = _TokenEndpoint(
        nrf=nrf,
        trust_anchors=trust_anchors,
        token_lifetime=token_lifetime,
        set_field=set_field,
        set_claim=set_claim,
        allowed_scopes=allowed_scopes,
        clock=clock,
    )
    return Starlette(routes=[Route(TOKEN_PATH, endpoint.token, methods=["POST"])])
