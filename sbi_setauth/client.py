"""The consumer side: an `httpx.Auth` that gets access tokens from the NRF, caches them, and signs
a fresh Client Credentials Assertion (CCA) for every request to a producer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .identifiers import normalize_nf_instance_id, normalize_nf_set_id
from .jws import JwsError, load_json_object, parse_compact
from .testing import sign_jws

__all__ = [
    "CCA_HEADER",
    "BINDING_HEADER",
    "ConsumerCertificate",
    "NfCredentials",
    "SbiAuth",
    "TokenCache",
    "TokenRequestError",
    "mtls_context",
]

logger = logging.getLogger(__name__)

CCA_HEADER = "3gpp-Sbi-Client-Credentials"
BINDING_HEADER = "3gpp-Sbi-Binding"
MAX_TOKEN_RESPONSE_SIZE = 65536
MAX_ACCESS_TOKEN_SIZE = 8192

StrPath = str | os.PathLike[str]


class ConsumerCertificate(Protocol):
    """What signing a CCA needs: the NF certificate chain (DER, leaf first) and its key."""

    @property
    def chain_der(self) -> Sequence[bytes]: ...

    @property
    def private_key(self) -> Any: ...


@dataclass(frozen=True)
class NfCredentials:
    """An NF certificate chain and private key loaded from PEM files."""

    chain_der: tuple[bytes, ...]
    private_key: Any = field(repr=False)

    @classmethod
    def from_pem_files(
        cls, certfile: StrPath, keyfile: StrPath, password: bytes | None = None
    ) -> NfCredentials:
        """Load the chain (leaf first) from `certfile` and the private key from `keyfile`."""
        with open(certfile, "rb") as handle:
            certificates = x509.load_pem_x509_certificates(handle.read())
        with open(keyfile, "rb") as handle:
            private_key = serialization.load_pem_private_key(handle.read(), password)
        chain = tuple(
            certificate.public_bytes(serialization.Encoding.DER) for certificate in certificates
        )
        return cls(chain_der=chain, private_key=private_key)


class TokenRequestError(Exception):
    """The NRF refused the access token request, or answered something unusable."""

    def __init__(self, status_code: int, error: str, description: str = "") -> None:
        super().__init__(f"{status_code} {error}" + (f": {description}" if description else ""))
        self.status_code = status_code
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class _CachedToken:
    access_token: str
    expires_at: float


class TokenCache:
    """Access tokens by what they were requested for; instances of one consumer NF Set that
    share a cache share the set token."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _CachedToken] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], fresh_until: float) -> str | None:
        """Return the token under `key` if it stays valid past `fresh_until`."""
        with self._lock:
            cached = self._tokens.get(key)
        if cached is None or cached.expires_at <= fresh_until:
            return None
        return cached.access_token

    def put(self, key: tuple[str, ...], access_token: str, expires_at: float) -> None:
        """Remember `access_token` under `key` until `expires_at`."""
        with self._lock:
            self._tokens[key] = _CachedToken(access_token, expires_at)

    def discard(self, key: tuple[str, ...], access_token: str) -> None:
        """Forget `access_token` if it is still the one under `key`."""
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.access_token == access_token:
                del self._tokens[key]


def mtls_context(
    *, trust_anchors: StrPath, certfile: StrPath | None = None, keyfile: StrPath | None = None
) -> ssl.SSLContext:
    """Return a TLS client context trusting `trust_anchors` and presenting the NF certificate."""
    context = ssl.create_default_context(cafile=os.fspath(trust_anchors))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        key_path = None if keyfile is None else os.fspath(keyfile)
        context.load_cert_chain(os.fspath(certfile), key_path)
    return context


class SbiAuth(httpx.Auth):
    """Consumer NF authentication for httpx: access token, CCA and consumer NF Set binding.

    Use it in one line, sync or async:
    `httpx.Client(auth=SbiAuth(...), verify=tls_context, http2=True)`.

    The token comes from `token_url` (the NRF's `/oauth2/token`) through `token_client`, or
    through a client of its own built on `tls_context` (mutual TLS). It is reused until
    `refresh_margin` seconds before it expires. With `nf_set_id` the NRF is asked for a set
    token and every request names the set in `3gpp-Sbi-Binding: bl=nf-set; nfset=<set>`.
    With a `certificate` and `send_cca`, every request (and the token request) carries a fresh
    CCA. A 401 `invalid_token` answer to a cached token drops it and retries once. `clock`
    decides when a cached token is due for renewal; CCAs are always dated by the system clock.
    """

    def __init__(
        self,
        *,
        token_url: str,
        nf_instance_id: str,
        nf_type: str,
        target_nf_type: str,
        scope: str,
        nf_set_id: str | None = None,
        certificate: ConsumerCertificate | None = None,
        send_cca: bool = True,
        refresh_margin: float = 30,
        token_client: httpx.Client | httpx.AsyncClient | None = None,
        tls_context: ssl.SSLContext | None = None,
        target_nf_instance_id: str | None = None,
        set_field: str = "requesterNfSetId",
        set_claim: str = "consumerNfSetId",
        cca_lifetime: int = 60,
        token_cache: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if token_client is None and tls_context is None:
            raise ValueError("give a token_client or a tls_context for the NRF connection")
        if send_cca and certificate is None:
            raise ValueError("signing CCAs needs a certificate; pass send_cca=False otherwise")
        if refresh_margin < 0 or cca_lifetime < 1:
            raise ValueError("refresh_margin and cca_lifetime must be positive")
        self.token_url = token_url
        self.nf_instance_id = normalize_nf_instance_id(nf_instance_id)
        self.nf_type = nf_type.upper()
        self.target_nf_type = target_nf_type.upper()
        self.scope = scope
        self.nf_set_id = normalize_nf_set_id(nf_set_id) if nf_set_id is not None else None
        self.certificate = certificate
        self.send_cca = send_cca
        self.refresh_margin = refresh_margin
        self.target_nf_instance_id = target_nf_instance_id
        self.set_field = set_field
        self.set_claim = set_claim
        self.cca_lifetime = cca_lifetime
        self.token_cache = token_cache or TokenCache()
        self.clock = clock
        self.token_requests = 0
        self._tls_context = tls_context
        self._sync_client = token_client if isinstance(token_client, httpx.Client) else None
        self._async_client = token_client if isinstance(token_client, httpx.AsyncClient) else None
        self._owns_sync_client = self._owns_async_client = False
        self._sync_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._x5c = (
            [base64.b64encode(der).decode("ascii") for der in certificate.chain_der]
            if certificate is not None
            else []
        )

    @property
    def cache_key(self) -> tuple[str, ...]:
        """What the cached token was requested for: the set, not the instance, for set tokens."""
        holder = ("set", self.nf_set_id) if self.nf_set_id else ("instance", self.nf_instance_id)
        target = self.target_nf_instance_id or self.target_nf_type
        return (*holder, target, self.scope)

    def sign_cca(self, audience: Sequence[str] | None = None) -> str:
        """Return a fresh CCA for `audience` (default: the target NF type) signed by this NF."""
        if self.certificate is None:
            raise ValueError("no certificate to sign a CCA with")
        issued_at = int(time.time())
        claims: dict[str, Any] = {
            "sub": self.nf_instance_id,
            "aud": list(audience or [self.target_nf_type]),
            "iat": issued_at,
            "exp": issued_at + self.cca_lifetime,
            "jti": str(uuid.uuid4()),
        }
        if self.nf_set_id is not None:
            claims[self.set_claim] = self.nf_set_id
        return sign_jws(claims, self.certificate.private_key, header={"x5c": self._x5c})

    def token_request_form(self) -> dict[str, str]:
        """The AccessTokenReq (TS 29.510) fields this consumer sends to the NRF."""
        form = {
            "grant_type": "client_credentials",
            "nfInstanceId": self.nf_instance_id,
            "nfType": self.nf_type,
            "targetNfType": self.target_nf_type,
            "scope": self.scope,
        }
        if self.target_nf_instance_id is not None:
            form["targetNfInstanceId"] = self.target_nf_instance_id
        if self.nf_set_id is not None:
            form[self.set_field] = self.nf_set_id
        return form

    def get_access_token(self) -> str:
        """Return a cached token that is still fresh, or request a new one (blocking)."""
        token = self.token_cache.get(self.cache_key, self.clock() + self.refresh_margin)
        if token is not None:
            return token
        with self._sync_lock:
            token = self.token_cache.get(self.cache_key, self.clock() + self.refresh_margin)
            if token is not None:
                return token
            client = self._token_client_sync()
            response = client.post(self.token_url, **self._token_request())
            return self._store(response)

    async def aget_access_token(self) -> str:
        """Return a cached token that is still fresh, or request a new one."""
        token = self.token_cache.get(self.cache_key, self.clock() + self.refresh_margin)
        if token is not None:
            return token
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            token = self.token_cache.get(self.cache_key, self.clock() + self.refresh_margin)
            if token is not None:
                return token
            client = self._token_client_async()
            response = await client.post(self.token_url, **self._token_request())
            return self._store(response)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.get_access_token()
        self._authorize(request, token)
        response = yield request
        if _is_invalid_token(response):
            self.token_cache.discard(self.cache_key, token)
            self._authorize(request, self.get_access_token())
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.aget_access_token()
        self._authorize(request, token)
        response = yield request
        if _is_invalid_token(response):
            self.token_cache.discard(self.cache_key, token)
            self._authorize(request, await self.aget_access_token())
            yield request

    def close(self) -> None:
        """Close the NRF client this object created, if any."""
        if self._owns_sync_client and self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        """Close the NRF clients this object created, if any."""
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def _authorize(self, request: httpx.Request, access_token: str) -> None:
        request.headers["Authorization"] = f"Bearer {access_token}"
        if self.send_cca:
            request.headers[CCA_HEADER] = self.sign_cca()
        if self.nf_set_id is not None:
            request.headers[BINDING_HEADER] = f"bl=nf-set; nfset={self.nf_set_id}"

    def _token_request(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.send_cca:
            headers[CCA_HEADER] = self.sign_cca(["NRF"])
        return {"data": self.token_request_form(), "headers": headers}

    def _token_client_sync(self) -> httpx.Client:
        if self._sync_client is None:
            if self._tls_context is None:
                raise TypeError("token_client is an AsyncClient; use this with httpx.AsyncClient")
            self._sync_client = httpx.Client(verify=self._tls_context, http2=True, timeout=10)
            self._owns_sync_client = True
        return self._sync_client

    def _token_client_async(self) -> httpx.AsyncClient:
        if self._async_client is None:
            if self._tls_context is None:
                raise TypeError("token_client is a Client; use SbiAuth with httpx.Client")
            self._async_client = httpx.AsyncClient(
                verify=self._tls_context, http2=True, timeout=10
            )
            self._owns_async_client = True
        return self._async_client

    def _store(self, response: httpx.Response) -> str:
        self.token_requests += 1
        access_token, expires_in = _parse_token_response(response)
        expires_at = self.clock() + expires_in if expires_in is not None else _exp(access_token)
        self.token_cache.put(self.cache_key, access_token, expires_at)
        logger.debug(
            "access token obtained for %s, valid for %.0f s",
            " ".join(self.cache_key),
            expires_at - self.clock(),
        )
        return access_token


def _is_invalid_token(response: httpx.Response) -> bool:
    challenge = response.headers.get("www-authenticate", "")
    return response.status_code == 401 and 'error="invalid_token"' in challenge


def _parse_token_response(response: httpx.Response) -> tuple[str, int | None]:
    body = response.read()
    if len(body) > MAX_TOKEN_RESPONSE_SIZE:
        raise TokenRequestError(response.status_code, "invalid_response", "answer too large")
    try:
        document = load_json_object(body)
    except JwsError:
        raise TokenRequestError(response.status_code, "invalid_response", "not JSON") from None

    if response.status_code != 200:
        error = document.get("error")
        description = document.get("error_description", "")
        raise TokenRequestError(
            response.status_code,
            error if isinstance(error, str) else "unknown_error",
            description[:200] if isinstance(description, str) else "",
        )
    access_token = document.get("access_token")
    token_type = document.get("token_type")
    expires_in = document.get("expires_in")
    if not isinstance(access_token, str) or not 0 < len(access_token) <= MAX_ACCESS_TOKEN_SIZE:
        raise TokenRequestError(200, "invalid_response", "no usable access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenRequestError(200, "invalid_response", "token_type is not Bearer")
    if expires_in is not None and (type(expires_in) is not int or expires_in < 0):
        raise TokenRequestError(200, "invalid_response", "expires_in is not a whole number")
    return access_token, expires_in


def _exp(access_token: str) -> float:
    # The token is only read, not verified, to know how long it may be reused.
    try:
        parsed = parse_compact(access_token, max_size=MAX_ACCESS_TOKEN_SIZE)
        claims = load_json_object(parsed.payload)
    except JwsError:
        return 0.0
    exp = claims.get("exp")
    return float(exp) if type(exp) is int else 0.0
