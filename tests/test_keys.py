"""Loading, selecting and reloading the NRF verification keys."""

from __future__ import annotations

import base64
import collections
import datetime
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sbi_setauth.jws import SIGNATURE_ALGORITHMS, JwsError, parse_compact, verify_signature
from sbi_setauth.keys import KeyFileError, NrfKeys

VECTORS = Path(__file__).parent / "vectors"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def spki(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem(private_key: Any) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def ec_jwk(private_key: ec.EllipticCurvePrivateKey, **members: Any) -> dict[str, Any]:
    numbers = private_key.public_key().public_numbers()
    size = (private_key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[
        private_key.curve.name
    ]
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64url(numbers.x.to_bytes(size, "big")),
        "y": b64url(numbers.y.to_bytes(size, "big")),
        **members,
    }


def rsa_jwk(private_key: rsa.RSAPrivateKey, **members: Any) -> dict[str, Any]:
    numbers = private_key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
        **members,
    }


def self_signed(private_key: Any, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(private_key, hashes.SHA256())
    )


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def thumbprint(certificate: x509.Certificate) -> str:
    return b64url(hashlib.sha256(der(certificate)).digest())


@pytest.fixture(scope="module")
def ec_keys() -> list[ec.EllipticCurvePrivateKey]:
    return [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


# Loading


def test_jwks_keys_are_selected_by_kid(
    tmp_path: Path, ec_keys: list[Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    path = write_json(
        tmp_path / "nrf.jwks",
        {"keys": [ec_jwk(ec_keys[0], kid="ec-1", use="sig"), rsa_jwk(rsa_key, kid="rsa-1")]},
    )
    keys = NrfKeys.from_files([path])

    assert len(keys) == 2
    assert spki(keys.select({"kid": "ec-1"}, "ES256").key) == spki(ec_keys[0].public_key())
    assert spki(keys.select({"kid": "rsa-1"}, "RS256").key) == spki(rsa_key.public_key())
    assert keys.select({"kid": "ec-1"}, "ES256").kid == "ec-1"


def test_single_jwk_is_used_when_the_header_names_no_key(
    tmp_path: Path, ec_keys: list[Any]
) -> None:
    keys = NrfKeys.from_files([write_json(tmp_path / "nrf.jwk", ec_jwk(ec_keys[0]))])

    selected = keys.select({"alg": "ES256"}, "ES256")
    assert len(keys) == 1
    assert spki(selected.key) == spki(ec_keys[0].public_key())
    assert (selected.kid, selected.x5t_s256, selected.alg) == (None, None, None)


def test_private_members_of_a_jwk_are_ignored(tmp_path: Path, ec_keys: list[Any]) -> None:
    d = ec_keys[0].private_numbers().private_value.to_bytes(32, "big")
    keys = NrfKeys.from_files([write_json(tmp_path / "k.jwk", ec_jwk(ec_keys[0], d=b64url(d)))])

    assert isinstance(keys.select({}, "ES256").key, ec.EllipticCurvePublicKey)


def test_pem_public_keys_are_loaded_and_need_a_name_when_several(
    tmp_path: Path, ec_keys: list[Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "nrf.pem"
    path.write_text(pem(ec_keys[0]) + "\n" + pem(rsa_key))
    keys = NrfKeys.from_files([path])

    assert len(keys) == 2
    with pytest.raises(JwsError, match="unknown key"):
        keys.select({"alg": "ES256"}, "ES256")


def test_pem_certificates_are_selected_by_x5t_s256(tmp_path: Path, ec_keys: list[Any]) -> None:
    first, second = self_signed(ec_keys[0], "nrf-1"), self_signed(ec_keys[1], "nrf-2")
    path = tmp_path / "nrf-certs.pem"
    path.write_bytes(
        first.public_bytes(serialization.Encoding.PEM)
        + second.public_bytes(serialization.Encoding.PEM)
    )
    keys = NrfKeys.from_files([path])

    selected = keys.select({"x5t#S256": thumbprint(second)}, "ES256")
    assert spki(selected.key) == spki(ec_keys[1].public_key())
    assert selected.kid is None and selected.x5t_s256 == thumbprint(second)
    with pytest.raises(JwsError, match="unknown key"):
        keys.select({"x5t#S256": b64url(b"\x00" * 32)}, "ES256")


def test_jwk_with_x5c_gets_the_certificate_thumbprint(tmp_path: Path, ec_keys: list[Any]) -> None:
    certificate = self_signed(ec_keys[0], "nrf")
    x5c = [base64.b64encode(der(certificate)).decode()]
    path = write_json(tmp_path / "k.jwk", ec_jwk(ec_keys[0], kid="k1", x5c=x5c))

    selected = NrfKeys.from_files([path]).select({"x5t#S256": thumbprint(certificate)}, "ES256")
    assert selected.kid == "k1"
    assert selected.x5t_s256 == thumbprint(certificate)


def test_jwk_whose_x5c_holds_another_key_is_refused(tmp_path: Path, ec_keys: list[Any]) -> None:
    certificate = self_signed(ec_keys[1], "other")
    x5c = [base64.b64encode(der(certificate)).decode()]
    path = write_json(tmp_path / "k.jwk", ec_jwk(ec_keys[0], x5c=x5c))

    with pytest.raises(KeyFileError, match="another key"):
        NrfKeys.from_files([path])


def test_keys_from_several_files_are_combined(
    tmp_path: Path, ec_keys: list[Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks = write_json(tmp_path / "a.jwks", {"keys": [ec_jwk(ec_keys[0], kid="a")]})
    pem_file = tmp_path / "b.pem"
    pem_file.write_text(pem(rsa_key))

    keys = NrfKeys.from_files([jwks, str(pem_file)])
    assert len(keys) == 2
    assert keys.select({"kid": "a"}, "ES256").kid == "a"


# Selection


def test_unknown_kid_is_rejected(tmp_path: Path, ec_keys: list[Any]) -> None:
    keys = NrfKeys.from_files([write_json(tmp_path / "k", ec_jwk(ec_keys[0], kid="a"))])

    with pytest.raises(JwsError, match="unknown key"):
        keys.select({"kid": "b"}, "ES256")


@pytest.mark.parametrize("kid", [7, ["a"], {"a": 1}, True, "k" * 257])
def test_kid_that_is_not_a_short_string_is_rejected(
    tmp_path: Path, ec_keys: list[Any], kid: Any
) -> None:
    keys = NrfKeys.from_files([write_json(tmp_path / "k", ec_jwk(ec_keys[0], kid="a"))])

    with pytest.raises(JwsError, match="kid"):
        keys.select({"kid": kid}, "ES256")


def test_several_keys_and_no_kid_is_rejected(tmp_path: Path, ec_keys: list[Any]) -> None:
    jwks = {"keys": [ec_jwk(ec_keys[0], kid="a"), ec_jwk(ec_keys[1], kid="b")]}
    keys = NrfKeys.from_files([write_json(tmp_path / "k", jwks)])

    with pytest.raises(JwsError, match="unknown key"):
        keys.select({}, "ES256")


def test_key_restricted_to_one_alg_is_refused_for_another(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = NrfKeys.from_files([write_json(tmp_path / "k", rsa_jwk(rsa_key, kid="r", alg="PS256"))])

    assert keys.select({"kid": "r"}, "PS256").alg == "PS256"
    with pytest.raises(JwsError, match="algorithm"):
        keys.select({"kid": "r"}, "RS256")


def test_kid_and_x5t_s256_naming_different_keys_is_rejected(
    tmp_path: Path, ec_keys: list[Any]
) -> None:
    certificates = [self_signed(key, "nrf") for key in ec_keys[:2]]
    jwks = {
        "keys": [
            ec_jwk(key, kid=kid, x5c=[base64.b64encode(der(certificate)).decode()])
            for key, kid, certificate in zip(ec_keys[:2], ("a", "b"), certificates)
        ]
    }
    keys = NrfKeys.from_files([write_json(tmp_path / "k", jwks)])

    assert keys.select({"kid": "a", "x5t#S256": thumbprint(certificates[0])}, "ES256").kid == "a"
    with pytest.raises(JwsError, match="different keys"):
        keys.select({"kid": "a", "x5t#S256": thumbprint(certificates[1])}, "ES256")


# Keys that are skipped


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"use": "enc"}, '"use"'),
        ({"key_ops": ["encrypt"]}, '"key_ops"'),
        ({"key_ops": ["sign, verify"]}, '"key_ops"'),
        ({"alg": "HS256"}, '"alg"'),
        ({"alg": "ES384"}, '"alg" does not fit'),
    ],
)
def test_key_not_meant_for_verification_is_skipped_with_a_log_line(
    tmp_path: Path,
    ec_keys: list[Any],
    caplog: pytest.LogCaptureFixture,
    extra: dict[str, Any],
    reason: str,
) -> None:
    jwks = {"keys": [ec_jwk(ec_keys[0], kid="skipped", **extra), ec_jwk(ec_keys[1], kid="kept")]}
    path = write_json(tmp_path / "k", jwks)

    with caplog.at_level(logging.WARNING, logger="sbi_setauth.keys"):
        keys = NrfKeys.from_files([path])

    assert len(keys) == 1
    with pytest.raises(JwsError, match="unknown key"):
        keys.select({"kid": "skipped"}, "ES256")
    assert any(str(path) in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_symmetric_key_is_never_loaded(tmp_path: Path, ec_keys: list[Any]) -> None:
    oct_key = {"kty": "oct", "k": b64url(b"s" * 32), "kid": "hmac", "alg": "HS256"}
    jwks = {"keys": [oct_key, ec_jwk(ec_keys[0])]}
    keys = NrfKeys.from_files([write_json(tmp_path / "k", jwks)])

    assert len(keys) == 1
    # The one key left has no kid, so it answers for any kid; it is the EC key, not the secret.
    chosen = keys.select({"kid": "hmac"}, "ES256")
    assert spki(chosen.key) == spki(ec_keys[0].public_key())
    with pytest.raises(KeyFileError, match="no usable"):
        NrfKeys.from_files([write_json(tmp_path / "only-oct", oct_key)])


def test_small_rsa_key_is_skipped(tmp_path: Path, ec_keys: list[Any]) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = write_json(tmp_path / "k", {"keys": [rsa_jwk(small, kid="small"), ec_jwk(ec_keys[0])]})

    assert len(NrfKeys.from_files([path])) == 1


def test_rsa_key_with_the_roca_weakness_is_skipped(tmp_path: Path) -> None:
    vectors = json.loads((VECTORS / "json_web_key_test.json").read_text())
    roca = next(g for g in vectors["testGroups"] if g["comment"] == "jws_rsa_roca_key")
    path = write_json(tmp_path / "roca.jwks", roca["private"])

    with pytest.raises(KeyFileError, match="no usable"):
        NrfKeys.from_files([path])


# Files that cannot be used


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key",
        b"\xff\xfe",
        b'{"keys": "nope"}',
        b'{"keys": []}',
        b'{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}',
        b'{"kty": "RSA", "n": "AQAB"}',
        b'{"kty": "EC", "kty": "RSA"}',
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n",
    ],
)
def test_unusable_file_raises_key_file_error_naming_the_path(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "broken-keys"
    path.write_bytes(content)

    with pytest.raises(KeyFileError) as raised:
        NrfKeys.from_files([path])
    assert str(path) in str(raised.value)
    assert raised.value.path == str(path)


def test_missing_file_raises_key_file_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing.jwks"):
        NrfKeys.from_files([tmp_path / "missing.jwks"])


def test_invalid_ec_point_is_refused(tmp_path: Path, ec_keys: list[Any]) -> None:
    jwk = ec_jwk(ec_keys[0])
    y = bytearray(base64.urlsafe_b64decode(jwk["y"] + "=="))
    y[-1] ^= 1
    jwk["y"] = b64url(bytes(y))

    with pytest.raises(KeyFileError, match="malformed"):
        NrfKeys.from_files([write_json(tmp_path / "k", jwk)])


def test_duplicate_kid_is_refused(tmp_path: Path, ec_keys: list[Any]) -> None:
    first = write_json(tmp_path / "a", ec_jwk(ec_keys[0], kid="same"))
    second = write_json(tmp_path / "b", ec_jwk(ec_keys[1], kid="same"))

    with pytest.raises(KeyFileError, match="more than once"):
        NrfKeys.from_files([first, second])


# Reloading


def test_added_key_is_honoured_after_an_unknown_kid(tmp_path: Path, ec_keys: list[Any]) -> None:
    clock = FakeClock()
    path = write_json(tmp_path / "nrf.jwks", {"keys": [ec_jwk(ec_keys[0], kid="old")]})
    keys = NrfKeys.from_files([path], clock=clock)

    with pytest.raises(JwsError, match="unknown key"):
        keys.select({"kid": "new"}, "ES256")
    write_json(path, {"keys": [ec_jwk(ec_keys[0], kid="old"), ec_jwk(ec_keys[1], kid="new")]})
    clock.now += 0.5
    with pytest.raises(JwsError, match="unknown key"):
        keys.select({"kid": "new"}, "ES256")
    clock.now += 0.6

    assert spki(keys.select({"kid": "new"}, "ES256").key) == spki(ec_keys[1].public_key())
    assert len(keys) == 2


def test_changed_file_is_reread_at_least_every_thirty_seconds(
    tmp_path: Path, ec_keys: list[Any]
) -> None:
    clock = FakeClock()
    path = write_json(tmp_path / "nrf.jwks", {"keys": [ec_jwk(ec_keys[0], kid="k")]})
    keys = NrfKeys.from_files([path], clock=clock)
    write_json(path, {"keys": [ec_jwk(ec_keys[1], kid="k", use="sig")]})

    clock.now += 29
    assert spki(keys.select({"kid": "k"}, "ES256").key) == spki(ec_keys[0].public_key())
    clock.now += 1.5
    assert spki(keys.select({"kid": "k"}, "ES256").key) == spki(ec_keys[1].public_key())


def test_broken_file_keeps_the_previous_keys_and_logs_an_error(
    tmp_path: Path, ec_keys: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = write_json(tmp_path / "nrf.jwks", {"keys": [ec_jwk(ec_keys[0], kid="k")]})
    keys = NrfKeys.from_files([path], clock=clock)
    path.write_text('{"keys": [')

    clock.now += 31
    with caplog.at_level(logging.ERROR, logger="sbi_setauth.keys"):
        selected = keys.select({"kid": "k"}, "ES256")
    assert spki(selected.key) == spki(ec_keys[0].public_key())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage()

    write_json(path, {"keys": [ec_jwk(ec_keys[0], kid="k"), ec_jwk(ec_keys[2], kid="k2")]})
    clock.now += 1
    assert keys.select({"kid": "k2"}, "ES256").kid == "k2"


def test_deleted_file_keeps_the_previous_keys(tmp_path: Path, ec_keys: list[Any]) -> None:
    clock = FakeClock()
    path = write_json(tmp_path / "nrf.jwks", {"keys": [ec_jwk(ec_keys[0], kid="k")]})
    keys = NrfKeys.from_files([path], clock=clock)
    path.unlink()

    clock.now += 31
    assert keys.select({"kid": "k"}, "ES256").kid == "k"


# Wycheproof JSON Web Key vectors


def accepted_with_keyset(token: str, keys: NrfKeys | None, allowed_algs: set[str]) -> bool:
    if keys is None:
        return False
    try:
        parsed = parse_compact(token, max_size=64 * 1024)
        alg = parsed.header.get("alg")
        if alg not in allowed_algs:
            raise JwsError("algorithm not accepted")
        verify_signature(parsed, alg, keys.select(parsed.header, alg).key)
    except JwsError:
        return False
    return True


def test_wycheproof_json_web_keys_are_loaded_or_refused_correctly(tmp_path: Path) -> None:
    vectors = json.loads((VECTORS / "json_web_key_test.json").read_text())
    counts: collections.Counter[str] = collections.Counter()
    wrongly_judged = []

    for number, group in enumerate(vectors["testGroups"]):
        keyset = group["private"]
        path = write_json(tmp_path / f"group{number}.jwks", keyset)
        try:
            keys: NrfKeys | None = NrfKeys.from_files([path])
            counts["keysets loaded"] += 1
        except KeyFileError:
            keys = None
            counts["keysets refused"] += 1
        allowed_algs = {k.get("alg") for k in keyset["keys"]} & SIGNATURE_ALGORITHMS

        for test in group["tests"]:
            counts["run"] += 1
            accepted = accepted_with_keyset(test["jws"], keys, allowed_algs)
            header_segment = test["jws"].split(".")[0]
            token_alg = json.loads(base64.urlsafe_b64decode(header_segment + "=="))["alg"]
            expected = test["result"] == "valid" and token_alg in SIGNATURE_ALGORITHMS
            counts[f"{test['result']} {'accepted' if accepted else 'rejected'}"] += 1
            if accepted != expected:
                wrongly_judged.append((test["tcId"], test["comment"]))

    print("\nWycheproof JWK:", dict(sorted(counts.items())))
    assert wrongly_judged == []
    assert counts["run"] >= vectors["numberOfTests"]
    assert counts["valid accepted"] >= 1
