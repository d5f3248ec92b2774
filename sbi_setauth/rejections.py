"""Why a request is refused, and how each refusal is answered.

Every rejection cause is one exception class. The mapping from cause to HTTP status,
`WWW-Authenticate` challenge and ProblemDetails body lives here and nowhere else.
"""

from __future__ import annotations

import json

__all__ = [
    "Rejection",
    "AccessTokenMissing",
    "InvalidRequest",
    "AccessTokenInvalid",
    "InsufficientScope",
    "CcaVerificationFailure",
    "TokenCcaMismatch",
    "PeerCertificateInvalid",
    "NfSetIdMissing",
    "NfSetIdMismatch",
    "SetTokenInUse",
    "HolderStoreUnavailable",
    "ALL_REJECTIONS",
    "render_rejection",
]


class Rejection(Exception):
    """Base class: a request that must not reach the producer's handler."""

    cause: str = ""
    status: int = 403
    title: str = ""
    bearer_error: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AccessTokenMissing(Rejection):
    """No Authorization header, or one with another scheme than Bearer."""

    cause = "ACCESS_TOKEN_MISSING"
    status = 401
    title = "Access token missing"


class InvalidRequest(Rejection):
    """Duplicate, oversized or malformed credential headers."""

    cause = "INVALID_REQUEST"
    status = 400
    title = "Invalid request"
    bearer_error = "invalid_request"


class AccessTokenInvalid(Rejection):
    """The access token failed a syntax, signature or claim check."""

    cause = "ACCESS_TOKEN_INVALID"
    status = 401
    title = "Invalid access token"
    bearer_error = "invalid_token"


class InsufficientScope(Rejection):
    """The access token does not cover the requested service or operation."""

    cause = "INSUFFICIENT_SCOPE"
    status = 403
    title = "Insufficient scope"
    bearer_error = "insufficient_scope"

    def __init__(self, detail: str, scope: str | None) -> None:
        super().__init__(detail)
        self.scope = scope


class CcaVerificationFailure(Rejection):
    """The Client Credentials Assertion is missing when required or fails verification."""

    cause = "CCA_VERIFICATION_FAILURE"
    title = "Client credentials assertion verification failure"


class TokenCcaMismatch(Rejection):
    """An instance token's `sub` differs from the CCA's `sub`."""

    cause = "TOKEN_CCA_MISMATCH"
    title = "Access token and client credentials assertion mismatch"


class PeerCertificateInvalid(Rejection):
    """The peer certificate is missing, untrusted, or names another instance."""

    cause = "PEER_CERTIFICATE_INVALID"
    title = "Peer certificate invalid"


class NfSetIdMissing(Rejection):
    """A set token came without the consumer NF Set ID or without proof of membership."""

    cause = "NF_SET_ID_MISSING"
    title = "Consumer NF Set ID missing"


class NfSetIdMismatch(Rejection):
    """The NF Set IDs in request, token, CCA and certificates differ."""

    cause = "NF_SET_ID_MISMATCH"
    title = "Consumer NF Set ID mismatch"


class SetTokenInUse(Rejection):
    """Another instance of the set holds the lease on this set token."""

    cause = "SET_TOKEN_IN_USE"
    title = "Set token in use by another instance"


class HolderStoreUnavailable(Rejection):
    """The lease store could not be reached and the producer fails closed."""

    cause = "HOLDER_STORE_UNAVAILABLE"
    status = 503
    title = "Lease store unavailable"
    retry_after = 1


ALL_REJECTIONS: tuple[type[Rejection], ...] = (
    AccessTokenMissing,
    InvalidRequest,
    AccessTokenInvalid,
    InsufficientScope,
    CcaVerificationFailure,
    TokenCcaMismatch,
    PeerCertificateInvalid,
    NfSetIdMissing,
    NfSetIdMismatch,
    SetTokenInUse,
    HolderStoreUnavailable,
)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_rejection(
    rejection: Rejection, realm: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Return the status, headers and ProblemDetails body that answer `rejection`."""
    problem = {
        "status": rejection.status,
        "cause": rejection.cause,
        "title": rejection.title,
        "detail": rejection.detail,
    }
    if isinstance(rejection, InsufficientScope) and rejection.scope:
        problem["invalidParams"] = [{"param": "scope", "reason": rejection.scope}]
    body = json.dumps(problem, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]

    if isinstance(rejection, AccessTokenMissing):
        headers.append((b"www-authenticate", f"Bearer realm={_quoted(realm)}".encode()))
    elif rejection.bearer_error is not None:
        challenge = f"Bearer realm={_quoted(realm)}, error={_quoted(rejection.bearer_error)}"
        if isinstance(rejection, InsufficientScope) and rejection.scope:
            challenge += f", scope={_quoted(rejection.scope)}"
        headers.append((b"www-authenticate", challenge.encode()))
    if isinstance(rejection, HolderStoreUnavailable):
        headers.append((b"retry-after", str(rejection.retry_after).encode()))
    return rejection.status, headers, body
