"""The NRF verification keys, read from JWK, JWKS or PEM files and re-read when the files change.

Only asymmetric public keys fit for signatures are kept; everything else in a file is skipped
with a log line, and a file that cannot be understood stops start-up with the file's name.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sbi_setauth.jws import (
    MIN_RSA_KEY_SIZE,
    SIGNATURE_ALGORITHMS,
    JwsError,
    check_key_fits,
    decode_base64url,
    load_json_object,
)

__all__ = ["KeyFileError", "VerificationKey", "NrfKeys"]

logger = logging.getLogger(__name__)

MAX_KEY_FILE_SIZE = 1024 * 1024
MAX_KID_LENGTH = 256
MAX_X5C_CERTIFICATES = 10
PERIODIC_CHECK_INTERVAL = 30.0
UNKNOWN_KEY_CHECK_INTERVAL = 1.0

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{1,64})-----\r?\n[A-Za-z0-9+/=\r\n\t ]*?-----END \1-----"
)
_EC_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_ROCA_PRIMES = (
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
    73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
)  # fmt: skip


class KeyFileError(ValueError):
    """A key file that cannot be read or parsed (names the file)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key the NRF signs access tokens with, and how a JWS header names it."""

    key: PublicKeyTypes
    kid: str | None
    x5t_s256: str | None
    alg: str | None


class _Skipped(Exception):
    """A key that is well formed but not usable for verifying NRF signatures."""


def _powers_of_65537(prime: int) -> frozenset[int]:
    powers = {1}
    value = 65537 % prime
    while value != 1:
        powers.add(value)
        value = value * 65537 % prime
    return frozenset(powers)


_ROCA_RESIDUES = {prime: _powers_of_65537(prime) for prime in _ROCA_PRIMES}


def _has_roca_fingerprint(modulus: int) -> bool:
    return all(modulus % prime in residues for prime, residues in _ROCA_RESIDUES.items())


def _check_usable(key: PublicKeyTypes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise _Skipped(f"elliptic curve {key.curve.name} is not supported")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_KEY_SIZE:
            raise _Skipped(f"RSA key of {key.key_size} bits is too small")
        if _has_roca_fingerprint(key.public_numbers().n):
            raise _Skipped("RSA modulus has the ROCA weakness")
    elif not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise _Skipped("key type is not supported for signatures")


def _x5t_s256(certificate: x509.Certificate) -> str:
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(f'member "{name}" missing or not a string')
    return decode_base64url(value)


def _public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKeyTypes:
    kty = jwk["kty"]
    crv = jwk.get("crv")
    if kty == "EC":
        if crv not in _EC_CURVES:
            raise _Skipped("elliptic curve is not supported")
        curve, size = _EC_CURVES[crv]
        x, y = _member(jwk, "x"), _member(jwk, "y")
        if len(x) != size or len(y) != size:
            raise ValueError("EC coordinate of the wrong length")
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)
    if kty == "RSA":
        modulus = int.from_bytes(_member(jwk, "n"), "big")
        exponent = int.from_bytes(_member(jwk, "e"), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if kty == "OKP":
        if crv == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(_member(jwk, "x"))
        if crv == "Ed448":
            return ed448.Ed448PublicKey.from_public_bytes(_member(jwk, "x"))
        raise _Skipped("OKP curve is not a signature curve")
    raise _Skipped("key type is not supported")


def _certificate_from_x5c(x5c: Any) -> x509.Certificate:
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= MAX_X5C_CERTIFICATES:
        raise ValueError('"x5c" is not a list of 1 to 10 certificates')
    if not all(isinstance(entry, str) for entry in x5c):
        raise ValueError('"x5c" holds a value that is not a string')
    return x509.load_der_x509_certificate(base64.b64decode(x5c[0], validate=True))


def _key_from_jwk(jwk: Any) -> VerificationKey:
    if not isinstance(jwk, dict):
        raise ValueError("key is not a JSON object")
    if not isinstance(jwk.get("kty"), str):
        raise ValueError('"kty" missing or not a string')
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
        raise ValueError('"kid" is not a string of at most 256 characters')
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise _Skipped('"use" is not "sig"')
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _Skipped('"key_ops" does not allow "verify"')
    if jwk["kty"] == "oct":
        raise _Skipped("symmetric keys are never used")
    alg = jwk.get("alg")
    if alg is not None and alg not in SIGNATURE_ALGORITHMS:
        raise _Skipped('"alg" is not a supported signature algorithm')

    key = _public_key_from_jwk(jwk)
    _check_usable(key)
    if alg is not None:
        try:
            check_key_fits(alg, key)
        except JwsError:
            raise _Skipped('"alg" does not fit the key') from None

    x5t_s256 = None
    if "x5c" in jwk:
        certificate = _certificate_from_x5c(jwk["x5c"])
        if _spki(certificate.public_key()) != _spki(key):
            raise ValueError('the "x5c" certificate holds another key')
        x5t_s256 = _x5t_s256(certificate)
    if "x5t#S256" in jwk:
        declared = jwk["x5t#S256"]
        if not isinstance(declared, str) or len(decode_base64url(declared)) != 32:
            raise ValueError('"x5t#S256" is not a base64url SHA-256 digest')
        if x5t_s256 is not None and declared != x5t_s256:
            raise ValueError('"x5t#S256" does not match the "x5c" certificate')
        x5t_s256 = declared
    return VerificationKey(key=key, kid=kid, x5t_s256=x5t_s256, alg=alg)


def _keys_from_json(path: Path, data: bytes) -> list[VerificationKey]:
    try:
        document = load_json_object(data)
    except JwsError as error:
        raise KeyFileError(path, f"not a valid JWK or JWKS ({error})") from None
    entries = document["keys"] if "keys" in document else [document]
    if not isinstance(entries, list):
        raise KeyFileError(path, '"keys" is not a list')

    loaded = []
    for position, jwk in enumerate(entries):
        label = f"key {position}"
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
            label += f' (kid "{jwk["kid"][:MAX_KID_LENGTH]}")'
        try:
            loaded.append(_key_from_jwk(jwk))
        except _Skipped as skipped:
            logger.warning("%s: %s skipped: %s", path, label, skipped)
        except (JwsError, ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise KeyFileError(path, f"{label} is malformed ({error})") from None
    return loaded


def _keys_from_pem(path: Path, text: str) -> list[VerificationKey]:
    loaded = []
    for position, block in enumerate(_PEM_BLOCK.finditer(text)):
        label = block.group(1)
        pem = block.group().encode("ascii")
        try:
            if label == "CERTIFICATE":
                certificate = x509.load_pem_x509_certificate(pem)
                key = certificate.public_key()
                x5t_s256: str | None = _x5t_s256(certificate)
            elif label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                key = serialization.load_pem_public_key(pem)
                x5t_s256 = None
            else:
                raise _Skipped(f"PEM block {label} is neither a public key nor a certificate")
            _check_usable(key)
        except _Skipped as skipped:
            logger.warning("%s: PEM block %d skipped: %s", path, position, skipped)
            continue
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise KeyFileError(path, f"PEM block {position} is malformed ({error})") from None
        # Limitation: a certificate's validity period and issuer are not checked; the file
        # is trusted as configured, so an expired NRF certificate keeps its key usable.
        loaded.append(VerificationKey(key=key, kid=None, x5t_s256=x5t_s256, alg=None))
    return loaded


def _load_file(path: Path) -> list[VerificationKey]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_SIZE + 1)
    except OSError as error:
        raise KeyFileError(path, f"cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyFileError(path, "larger than 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(path, "is not UTF-8 text") from None

    if text.lstrip().startswith("{"):
        keys = _keys_from_json(path, data)
    elif "-----BEGIN " in text:
        keys = _keys_from_pem(path, text)
    else:
        raise KeyFileError(path, "is neither a JWK, a JWKS nor PEM")
    if not keys:
        raise KeyFileError(path, "holds no usable verification key")
    return keys


@dataclass(frozen=True, slots=True)
class _KeyIndex:
    keys: tuple[VerificationKey, ...]
    by_kid: dict[str, VerificationKey]
    by_x5t_s256: dict[str, VerificationKey]


def _load_index(paths: Sequence[Path]) -> _KeyIndex:
    keys: list[VerificationKey] = []
    by_kid: dict[str, VerificationKey] = {}
    by_x5t_s256: dict[str, VerificationKey] = {}
    for path in paths:
        for key in _load_file(path):
            if key.kid is not None:
                if key.kid in by_kid:
                    raise KeyFileError(path, f'kid "{key.kid}" appears more than once')
                by_kid[key.kid] = key
            if key.x5t_s256 is not None:
                by_x5t_s256.setdefault(key.x5t_s256, key)
            keys.append(key)
    return _KeyIndex(tuple(keys), by_kid, by_x5t_s256)


_FileStat = tuple[int, int, int] | None


def _stat(path: Path) -> _FileStat:
    try:
        result = path.stat()
    except OSError:
        return None
    return (result.st_mtime_ns, result.st_size, result.st_ino)


def _header_name(header: Mapping[str, Any], member: str) -> str | None:
    value = header.get(member)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_KID_LENGTH:
        raise JwsError(f'"{member}" is not a string of at most 256 characters')
    return value


class NrfKeys:
    """The NRF verification keys, loaded from files at start-up and re-read when they change."""

    def __init__(self, paths: Sequence[Path], *, clock: Callable[[], float]) -> None:
        self._paths = tuple(paths)
        self._clock = clock
        self._lock = threading.Lock()
        self._stats = [_stat(path) for path in self._paths]
        self._index = _load_index(self._paths)
        self.generation = 0
        now = clock()
        self._next_periodic_check = now + PERIODIC_CHECK_INTERVAL
        self._next_unknown_key_check = now

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> NrfKeys:
        """Load every key of `paths` (JWKS, JWK or PEM), or raise KeyFileError."""
        if isinstance(paths, (str, os.PathLike)) or not paths:
            raise KeyFileError("<none>", "a non-empty list of key files is required")
        return cls([Path(path) for path in paths], clock=clock)

    def __len__(self) -> int:
        return len(self._index.keys)

    def select(self, header: Mapping[str, Any], alg: str) -> VerificationKey:
        """Return the key that the JWS `header` names for `alg`, or raise JwsError."""
        kid = _header_name(header, "kid")
        x5t_s256 = _header_name(header, "x5t#S256")
        now = self._clock()
        self._refresh_at(now)

        key = self._find(kid, x5t_s256)
        if key is None and (kid is not None or x5t_s256 is not None):
            if now >= self._next_unknown_key_check:
                self._next_unknown_key_check = now + UNKNOWN_KEY_CHECK_INTERVAL
                if self._reload_if_changed():
                    key = self._find(kid, x5t_s256)
        if key is None:
            raise JwsError("unknown key")

        if kid is not None and x5t_s256 is not None and key.x5t_s256 not in (None, x5t_s256):
            raise JwsError('"kid" and "x5t#S256" name different keys')
        if key.alg is not None and key.alg != alg:
            raise JwsError("key is not meant for this algorithm")
        return key

    def refresh(self) -> int:
        """Re-read changed files when the periodic check is due; return the key generation.

        The generation goes up with every reload, so callers that keep anything verified with
        these keys know when to forget it.
        """
        self._refresh_at(self._clock())
        return self.generation

    def _refresh_at(self, now: float) -> None:
        if now >= self._next_periodic_check:
            self._next_periodic_check = now + PERIODIC_CHECK_INTERVAL
            self._reload_if_changed()

    def _find(self, kid: str | None, x5t_s256: str | None) -> VerificationKey | None:
        index = self._index
        if kid is not None and (index.by_kid or len(index.keys) != 1):
            return index.by_kid.get(kid)
        if x5t_s256 is not None:
            return index.by_x5t_s256.get(x5t_s256)
        return index.keys[0] if len(index.keys) == 1 else None

    def _reload_if_changed(self) -> bool:
        # Limitation: files are re-read on the thread that calls select(), so a request waits
        # for the read; files are capped at 1 MiB and read at most once a second.
        with self._lock:
            stats = [_stat(path) for path in self._paths]
            if stats == self._stats:
                return False
            self._stats = stats
            try:
                index = _load_index(self._paths)
            except KeyFileError as error:
                logger.error("NRF keys not reloaded, keeping the previous keys: %s", error)
                return False
            self._index = index
            self.generation += 1
        logger.info("NRF keys reloaded: %d keys", len(index.keys))
        return True
