"""Access-token verification: turns the bearer token into verified facts or a rejection.

The signature and every claim that does not depend on the clock are checked once per distinct
token and remembered; the time claims and the scope are checked on every request.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .identifiers import IdentifierError, normalize_nf_instance_id, normalize_nf_set_id
from .jws import JwsError, load_json_object, parse_compact, verify_signature
from .keys import NrfKeys
from .rejections import AccessTokenInvalid, InsufficientScope
from .settings import Settings

__all__ = ["VerifiedAccessToken", "AccessTokenVerifier", "MAX_ACCESS_TOKEN_SIZE"]

MAX_ACCESS_TOKEN_SIZE = 8192
MAX_AUDIENCES = 64
MAX_LIST_CLAIM = 64
MAX_SCOPES = 64

_SCOPE = re.compile(r"[a-zA-Z0-9_:-]+( [a-zA-Z0-9_:-]+)*")
_JTI = re.compile(r"[\x21-\x7e]{1,256}")
_MCC = re.compile(r"[0-9]{3}")
_MNC = re.compile(r"[0-9]{2,3}")
_SD = re.compile(r"[0-9A-Fa-f]{6}")
_REFUSED_HEADERS = ("crit", "jku", "jwk", "x5u", "b64", "zip", "enc")


@dataclass(frozen=True, slots=True)
class VerifiedAccessToken:
    """An access token whose signature and claims have been verified."""

    sub: str
    nf_set_id: str | None
    scopes: frozenset[str]
    expires_at: int
    not_before: int | None
    issued_at: int | None
    token_key: str
    claims: Mapping[str, Any]

    @property
    def is_set_token(self) -> bool:
        """Whether the token was issued to a whole consumer NF Set."""
        return self.nf_set_id is not None


def _integer(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required or name in claims:
            raise AccessTokenInvalid(f"the {name} claim is missing or null")
        return None
    if type(value) is not int or not 0 <= value < 2**53:
        raise AccessTokenInvalid(f"the {name} claim is not a NumericDate integer")
    return value


def _string(claims: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = claims.get(name)
    if value is None and not required and name not in claims:
        return None
    if type(value) is not str or not value or len(value) > 1024:
        raise AccessTokenInvalid(f"the {name} claim is not a string")
    return value


class AccessTokenVerifier:
    """Verifies NRF access tokens for one producer, as configured by `Settings`."""

    def __init__(
        self,
        settings: Settings,
        keys: NrfKeys,
        *,
        clock: Callable[[], float] = time.time,
        cache_size: int = 4096,
    ) -> None:
        self.keys = keys
        self.clock = clock
        self.clock_skew = settings.clock_skew
        self.algorithms = frozenset(settings.token_algorithms)
        self.issuers = frozenset(settings.nrf_issuers)
        self.nf_type = settings.nf_type
        self.nf_instance_id = settings.nf_instance_id
        self.nf_set_id = settings.nf_set_id
        self.plmn_ids = frozenset(settings.plmn_ids)
        self.snssais = frozenset(settings.snssais)
        self.set_claim = settings.set_claim
        self.cache_size = cache_size
        self._cache: OrderedDict[str, VerifiedAccessToken] = OrderedDict()
        self._keys_generation = keys.generation

    def verify(self, access_token: str) -> VerifiedAccessToken:
        """Return the verified token, or raise `AccessTokenInvalid`; scopes are not checked."""
        generation = self.keys.refresh()
        if generation != self._keys_generation:
            self._cache.clear()
            self._keys_generation = generation
        verified = self._cache.get(access_token)
        if verified is None:
            verified = self._verify_uncached(access_token)
            self._cache[access_token] = verified
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(access_token)

        now = self.clock()
        if verified.expires_at <= now - self.clock_skew:
            raise AccessTokenInvalid("the access token has expired")
        if verified.not_before is not None and verified.not_before > now + self.clock_skew:
            raise AccessTokenInvalid("the access token is not yet valid")
        if verified.issued_at is not None and verified.issued_at > now + self.clock_skew:
            raise AccessTokenInvalid("the access token was issued in the future")
        return verified

    @staticmethod
    def check_scope(verified: VerifiedAccessToken, service: str, operation: str | None) -> None:
        """Raise `InsufficientScope` unless the token covers the service and the operation."""
        if service not in verified.scopes:
            raise InsufficientScope(f"the access token does not grant {service}", service)
        if operation is not None and operation not in verified.scopes:
            raise InsufficientScope(f"the access token does not grant {operation}", operation)

    def _verify_uncached(self, access_token: str) -> VerifiedAccessToken:
        try:
            parsed = parse_compact(access_token, max_size=MAX_ACCESS_TOKEN_SIZE)
        except JwsError as error:
            raise AccessTokenInvalid(f"malformed access token: {error}") from None

        header = parsed.header
        alg = header.get("alg")
        if type(alg) is not str or alg not in self.algorithms:
            raise AccessTokenInvalid("the access token algorithm is not accepted")
        typ = header.get("typ")
        if typ is not None and (type(typ) is not str or typ.upper() != "JWT"):
            raise AccessTokenInvalid("the access token typ is not JWT")
        for name in _REFUSED_HEADERS:
            if name in header:
                raise AccessTokenInvalid(f"the access token header {name} is not accepted")
        try:
            key = self.keys.select(header, alg)
            verify_signature(parsed, alg, key.key)
            claims = load_json_object(parsed.payload)
        except JwsError as error:
            raise AccessTokenInvalid(f"access token rejected: {error}") from None

        return self._check_claims(claims, access_token)

    def _check_claims(self, claims: dict[str, Any], access_token: str) -> VerifiedAccessToken:
        issuer = _string(claims, "iss", required=True)
        if _normalized_id(issuer) not in self.issuers:
            raise AccessTokenInvalid("the access token issuer is not an allowed NRF")
        sub = _normalized_id(_string(claims, "sub", required=True))
        if sub is None:
            raise AccessTokenInvalid("the sub claim is not an NF instance ID")
        self._check_audience(claims.get("aud"))

        scope = _string(claims, "scope", required=True)
        if not _SCOPE.fullmatch(scope):
            raise AccessTokenInvalid("the scope claim is malformed")
        scopes = frozenset(scope.split(" "))
        if len(scopes) > MAX_SCOPES:
            raise AccessTokenInvalid("the scope claim names too many scopes")

        expires_at = _integer(claims, "exp", required=True)
        issued_at = _integer(claims, "iat", required=False)
        not_before = _integer(claims, "nbf", required=False)
        self._check_producer_claims(claims)
        for name in ("consumerPlmnId", "consumerSnpnId", "producerSnpnId"):
            if name in claims and type(claims[name]) is not dict:
                raise AccessTokenInvalid(f"the {name} claim is not an object")
        for name in ("producerNfServiceSetId", "sourceNfInstanceId"):
            _string(claims, name)
        if "producerNsiList" in claims:
            # Limitation: there is no setting for served NSIs, so only the claim's shape is
            # checked; a token naming another network slice instance is not refused.
            _string_list(claims, "producerNsiList")

        nf_set_id = None
        if self.set_claim in claims:
            raw_set = _string(claims, self.set_claim)
            try:
                nf_set_id = normalize_nf_set_id(raw_set)
            except IdentifierError:
                raise AccessTokenInvalid(f"the {self.set_claim} claim is malformed") from None

        jti = _string(claims, "jti")
        if jti is not None and not _JTI.fullmatch(jti):
            raise AccessTokenInvalid("the jti claim is malformed")
        identity = f"jti {issuer} {jti}" if jti else access_token
        token_key = hashlib.sha256(identity.encode()).hexdigest()

        return VerifiedAccessToken(
            sub=sub,
            nf_set_id=nf_set_id,
            scopes=scopes,
            expires_at=expires_at,
            not_before=not_before,
            issued_at=issued_at,
            token_key=token_key,
            claims=MappingProxyType(claims),
        )

    def _check_audience(self, audience: Any) -> None:
        if type(audience) is str:
            if audience != self.nf_type:
                raise AccessTokenInvalid("the access token audience is another NF type")
            return
        if type(audience) is not list or not 0 < len(audience) <= MAX_AUDIENCES:
            raise AccessTokenInvalid(
                "the aud claim is neither an NF type nor a list of NF instances"
            )
        for member in audience:
            if type(member) is not str:
                raise AccessTokenInvalid("the aud claim holds a value that is not a string")
        if not any(_normalized_id(member) == self.nf_instance_id for member in audience):
            raise AccessTokenInvalid("the access token audience does not name this NF instance")

    def _check_producer_claims(self, claims: Mapping[str, Any]) -> None:
        if "producerNfSetId" in claims:
            producer_set = _string(claims, "producerNfSetId")
            if self.nf_set_id is None:
                raise AccessTokenInvalid("producerNfSetId cannot be confirmed: NF_SET_ID is unset")
            try:
                matches = normalize_nf_set_id(producer_set) == self.nf_set_id
            except IdentifierError:
                raise AccessTokenInvalid("the producerNfSetId claim is malformed") from None
            if not matches:
                raise AccessTokenInvalid("the access token is for another producer NF Set")

        if "producerPlmnId" in claims:
            if not self.plmn_ids:
                raise AccessTokenInvalid("producerPlmnId cannot be confirmed: PLMN_IDS is unset")
            if _plmn_id(claims["producerPlmnId"]) not in self.plmn_ids:
                raise AccessTokenInvalid("the access token is for another PLMN")

        if "producerSnssaiList" in claims:
            if not self.snssais:
                raise AccessTokenInvalid(
                    "producerSnssaiList cannot be confirmed: SNSSAIS is unset"
                )
            snssais = claims["producerSnssaiList"]
            if type(snssais) is not list or not 0 < len(snssais) <= MAX_LIST_CLAIM:
                raise AccessTokenInvalid("the producerSnssaiList claim is not a list of S-NSSAIs")
            if not any(_snssai(item) in self.snssais for item in snssais):
                raise AccessTokenInvalid("the access token is for S-NSSAIs this NF does not serve")


def _normalized_id(value: str) -> str | None:
    try:
        return normalize_nf_instance_id(value)
    except IdentifierError:
        return None


def _string_list(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims[name]
    if type(value) is not list or len(value) > MAX_LIST_CLAIM:
        raise AccessTokenInvalid(f"the {name} claim is not a list of strings")
    for item in value:
        if type(item) is not str:
            raise AccessTokenInvalid(f"the {name} claim is not a list of strings")
    return value


def _plmn_id(value: Any) -> tuple[str, str]:
    if type(value) is not dict or set(value) - {"mcc", "mnc"}:
        raise AccessTokenInvalid("the producerPlmnId claim is not a PlmnId")
    mcc, mnc = value.get("mcc"), value.get("mnc")
    if type(mcc) is not str or type(mnc) is not str:
        raise AccessTokenInvalid("the producerPlmnId claim is not a PlmnId")
    if not (_MCC.fullmatch(mcc) and _MNC.fullmatch(mnc)):
        raise AccessTokenInvalid("the producerPlmnId claim is not a PlmnId")
    return mcc, mnc


def _snssai(value: Any) -> tuple[int, str | None]:
    if type(value) is not dict or set(value) - {"sst", "sd"}:
        raise AccessTokenInvalid("the producerSnssaiList claim holds a malformed S-NSSAI")
    sst, sd = value.get("sst"), value.get("sd")
    if type(sst) is not int or not 0 <= sst <= 255:
        raise AccessTokenInvalid("the producerSnssaiList claim holds a malformed S-NSSAI")
    if sd is not None and (type(sd) is not str or not _SD.fullmatch(sd)):
        raise AccessTokenInvalid("the producerSnssaiList claim holds a malformed S-NSSAI")
    return sst, sd.lower() if sd else None
