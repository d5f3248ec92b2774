"""Strict parsing and signature verification of JWS compact serialization.

Access tokens and Client Credentials Assertions both arrive in this form; everything here treats
the input as hostile: sizes, characters, JSON shape and signature encodings are checked exactly.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "JwsError",
    "ParsedJws",
    "SIGNATURE_ALGORITHMS",
    "parse_compact",
    "load_json_object",
    "decode_base64url",
    "verify_signature",
    "alg_for_key",
    "check_key_fits",
]

MIN_RSA_KEY_SIZE = 2048
MAX_INTEGER_DIGITS = 20

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_JSON_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\[\s\S])*"?|[\[\]{}]')
_UTF8_BOM = b"\xef\xbb\xbf"


class JwsError(ValueError):
    """A JWS that is malformed or whose signature does not verify. str() is safe to show."""


@dataclass(frozen=True, slots=True)
class ParsedJws:
    """The parts of a JWS compact serialization, decoded but not yet verified."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class _EcdsaScheme:
    curve: type[ec.EllipticCurve]
    order: int
    coordinate_size: int
    hash_algorithm: hashes.HashAlgorithm


@dataclass(frozen=True, slots=True)
class _RsaScheme:
    hash_algorithm: hashes.HashAlgorithm
    pss: bool


@dataclass(frozen=True, slots=True)
class _EddsaScheme:
    pass


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P384_ORDER = int("F" * 48 + "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)
_P521_ORDER = int(
    "01" + "F" * 64 + "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16
)

_SCHEMES: dict[str, _EcdsaScheme | _RsaScheme | _EddsaScheme] = {
    "ES256": _EcdsaScheme(ec.SECP256R1, _P256_ORDER, 32, hashes.SHA256()),
    "ES384": _EcdsaScheme(ec.SECP384R1, _P384_ORDER, 48, hashes.SHA384()),
    "ES512": _EcdsaScheme(ec.SECP521R1, _P521_ORDER, 66, hashes.SHA512()),
    "RS256": _RsaScheme(hashes.SHA256(), pss=False),
    "RS384": _RsaScheme(hashes.SHA384(), pss=False),
    "RS512": _RsaScheme(hashes.SHA512(), pss=False),
    "PS256": _RsaScheme(hashes.SHA256(), pss=True),
    "PS384": _RsaScheme(hashes.SHA384(), pss=True),
    "PS512": _RsaScheme(hashes.SHA512(), pss=True),
    "EdDSA": _EddsaScheme(),
}

SIGNATURE_ALGORITHMS: frozenset[str] = frozenset(_SCHEMES)
"""The asymmetric JWS algorithms this package verifies; HMAC and `none` are never among them."""

_PKCS1V15 = padding.PKCS1v15()
_PSS = {
    alg: padding.PSS(
        mgf=padding.MGF1(scheme.hash_algorithm), salt_length=scheme.hash_algorithm.digest_size
    )
    for alg, scheme in _SCHEMES.items()
    if isinstance(scheme, _RsaScheme) and scheme.pss
}


def decode_base64url(segment: str) -> bytes:
    """Decode unpadded, canonical base64url (RFC 7515 section 2), or raise JwsError."""
    if not isinstance(segment, str) or not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise JwsError("malformed base64url")
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        raise JwsError("non-canonical base64url")
    return decoded


def parse_compact(value: str, *, max_size: int) -> ParsedJws:
    """Split and decode a JWS compact serialization; the signature is not checked here."""
    if not isinstance(value, str):
        raise JwsError("JWS is not a string")
    if len(value) > max_size:
        raise JwsError("JWS too large")

    segments = value.split(".")
    if len(segments) != 3:
        raise JwsError("JWS must have exactly three segments")
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise JwsError("JWS segment is empty or holds characters outside base64url")
    encoded_header, encoded_payload, encoded_signature = segments

    header = load_json_object(decode_base64url(encoded_header))
    return ParsedJws(
        header=header,
        payload=decode_base64url(encoded_payload),
        signing_input=f"{encoded_header}.{encoded_payload}".encode("ascii"),
        signature=decode_base64url(encoded_signature),
    )


def _reject_constant(name: str) -> NoReturn:
    raise JwsError(f"JSON constant {name} is not allowed")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JwsError("JSON integer too long")
    return int(text)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JwsError("JSON number out of range")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JwsError("duplicate member in JSON object")
        result[key] = value
    return result


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for match in _JSON_STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _check_strings(document: Any) -> None:
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def load_json_object(data: bytes, *, max_depth: int = 8) -> dict[str, Any]:
    """Parse `data` as a strict UTF-8 JSON object, or raise JwsError.

    Rejected: a byte order mark, invalid UTF-8 or lone surrogates, duplicate members, nesting
    deeper than `max_depth`, NaN and Infinity, integers longer than 20 digits, infinite floats.
    """
    if data.startswith(_UTF8_BOM):
        raise JwsError("JSON must not start with a byte order mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise JwsError("JSON is not valid UTF-8") from None
    brackets = text.count("{") + text.count("[")
    if brackets > max_depth and _nesting_depth(text) > max_depth:
        raise JwsError("JSON nested too deeply")

    try:
        document = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
        if "\\u" in text:
            _check_strings(document)
    except JwsError:
        raise
    except (ValueError, RecursionError):
        raise JwsError("malformed JSON") from None
    if not isinstance(document, dict):
        raise JwsError("JSON value is not an object")
    return document


def alg_for_key(key: PublicKeyTypes) -> str:
    """Return the one JWS algorithm a CCA signed with `key` may use, or raise JwsError."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        for alg in ("ES256", "ES384", "ES512"):
            scheme = _SCHEMES[alg]
            if isinstance(scheme, _EcdsaScheme) and isinstance(key.curve, scheme.curve):
                return alg
        raise JwsError("unsupported elliptic curve")
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise JwsError("unsupported key type")


def check_key_fits(alg: str, key: PublicKeyTypes) -> None:
    """Raise JwsError unless `key` is of the type and strength that `alg` requires."""
    scheme = _SCHEMES.get(alg)
    if scheme is None:
        raise JwsError("unsupported signature algorithm")
    if isinstance(scheme, _EcdsaScheme):
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, scheme.curve
        ):
            raise JwsError("key does not fit the signature algorithm")
    elif isinstance(scheme, _RsaScheme):
        if not isinstance(key, rsa.RSAPublicKey):
            raise JwsError("key does not fit the signature algorithm")
        if key.key_size < MIN_RSA_KEY_SIZE:
            raise JwsError("RSA key too small")
    elif not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise JwsError("key does not fit the signature algorithm")


def _ecdsa_der_signature(signature: bytes, scheme: _EcdsaScheme) -> bytes:
    size = scheme.coordinate_size
    if len(signature) != 2 * size:
        raise JwsError("signature verification failed")
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    if not (0 < r < scheme.order and 0 < s < scheme.order):
        raise JwsError("signature verification failed")
    return encode_dss_signature(r, s)


def verify_signature(parsed: ParsedJws, alg: str, key: PublicKeyTypes) -> None:
    """Verify the signature of `parsed` with `key` under `alg`, or raise JwsError.

    `alg` comes from the caller's configuration or from the key, never from the JWS header.
    """
    check_key_fits(alg, key)
    scheme = _SCHEMES[alg]
    message = parsed.signing_input
    signature = parsed.signature

    try:
        if isinstance(scheme, _EcdsaScheme):
            der = _ecdsa_der_signature(signature, scheme)
            cast(ec.EllipticCurvePublicKey, key).verify(
                der, message, ec.ECDSA(scheme.hash_algorithm)
            )
        elif isinstance(scheme, _RsaScheme):
            rsa_key = cast(rsa.RSAPublicKey, key)
            if len(signature) != (rsa_key.key_size + 7) // 8:
                raise JwsError("signature verification failed")
            pad = _PSS[alg] if scheme.pss else _PKCS1V15
            rsa_key.verify(signature, message, pad, scheme.hash_algorithm)
        else:
            cast(ed25519.Ed25519PublicKey, key).verify(signature, message)
    except JwsError:
        raise
    except (InvalidSignature, ValueError, TypeError, OverflowError):
        raise JwsError("signature verification failed") from None
