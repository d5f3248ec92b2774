"""Strict JWS parsing and signature verification, against Wycheproof vectors and known attacks."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sbi_setauth.jws import (
    SIGNATURE_ALGORITHMS,
    JwsError,
    ParsedJws,
    alg_for_key,
    decode_base64url,
    load_json_object,
    parse_compact,
    verify_signature,
)
from sbi_setauth.keys import KeyFileError, NrfKeys

VECTORS = Path(__file__).parent / "vectors"
MAX_SIZE = 64 * 1024
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}

HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(alg: str, private_key: Any, header: dict[str, Any], payload: bytes) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
    message = signing_input.encode("ascii")
    if alg.startswith("ES"):
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(HASHES[alg[2:]])))
        size = (private_key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif alg.startswith("RS"):
        signature = private_key.sign(message, padding.PKCS1v15(), HASHES[alg[2:]])
    elif alg.startswith("PS"):
        digest = HASHES[alg[2:]]
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        signature = private_key.sign(message, pss, digest)
    else:
        signature = private_key.sign(message)
    return f"{signing_input}.{b64url(signature)}"


@pytest.fixture(scope="module")
def private_keys() -> dict[str, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "ES512": ec.generate_private_key(ec.SECP521R1()),
        "RS256": rsa_key,
        "RS384": rsa_key,
        "RS512": rsa_key,
        "PS256": rsa_key,
        "PS384": rsa_key,
        "PS512": rsa_key,
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
        "Ed448": ed448.Ed448PrivateKey.generate(),
    }


def encode_json(document: Any) -> str:
    return b64url(json.dumps(document).encode())


ES256_HEADER = encode_json({"alg": "ES256"})
EMPTY_CLAIMS = encode_json({})


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


# Wycheproof JSON Web Signature vectors


def accepts_like_a_caller(token: str, keys: NrfKeys | None, configured_alg: str | None) -> bool:
    """Parse, pin the algorithm, select the key and verify, the way a token check does."""
    if keys is None or configured_alg is None:
        return False
    try:
        parsed = parse_compact(token, max_size=MAX_SIZE)
        if parsed.header.get("alg") != configured_alg:
            raise JwsError("algorithm not accepted")
        key = keys.select(parsed.header, configured_alg)
        verify_signature(parsed, configured_alg, key.key)
    except JwsError:
        return False
    return True


def deliberate_rejection(group_jwk: dict[str, Any], token: str) -> str | None:
    """Why a token Wycheproof calls valid is refused here on purpose, or None."""
    if group_jwk.get("kty") == "oct":
        return "HMAC is never accepted"
    if "key_ops" in group_jwk and "verify" not in group_jwk["key_ops"]:
        return 'key "key_ops" does not list "verify"'
    if group_jwk.get("alg") not in SIGNATURE_ALGORITHMS:
        return 'key "alg" is not a JWS signature algorithm'
    if header_of(token).get("alg") != group_jwk["alg"]:
        return 'key "alg" restricts the key to another algorithm'
    if token.split(".")[1] == "":
        return "empty payload segment (3GPP requires three non-empty segments)"
    return None


def configured_alg_for(public_jwk: dict[str, Any]) -> str | None:
    """The algorithm an operator would configure: the JWK's own, else the one its key implies."""
    if public_jwk.get("alg") in SIGNATURE_ALGORITHMS:
        return public_jwk["alg"]
    if public_jwk.get("kty") == "RSA":
        return alg_for_key(RSAAlgorithm.from_jwk(public_jwk))
    if public_jwk.get("kty") == "EC":
        return alg_for_key(ECAlgorithm.from_jwk(public_jwk))
    return None


def test_wycheproof_json_web_signatures_are_judged_correctly(tmp_path: Path) -> None:
    vectors = json.loads((VECTORS / "json_web_signature_test.json").read_text())
    counts: collections.Counter[str] = collections.Counter()
    wrongly_judged = []

    for number, group in enumerate(vectors["testGroups"]):
        group_jwk = group["private"]
        public_jwk = {k: v for k, v in group_jwk.items() if k not in PRIVATE_JWK_MEMBERS}
        key_file = tmp_path / f"group{number}.json"
        key_file.write_text(json.dumps(public_jwk))
        try:
            keys: NrfKeys | None = NrfKeys.from_files([key_file])
        except KeyFileError:
            keys = None
            counts["groups without a usable public key"] += 1
        configured_alg = configured_alg_for(public_jwk)

        for test in group["tests"]:
            counts["run"] += 1
            accepted = accepts_like_a_caller(test["jws"], keys, configured_alg)
            result = test["result"]
            if result == "invalid":
                counts["invalid rejected" if not accepted else "invalid ACCEPTED"] += 1
                if accepted:
                    wrongly_judged.append((test["tcId"], test["comment"]))
            elif result == "valid":
                reason = deliberate_rejection(group_jwk, test["jws"])
                if accepted:
                    counts["valid accepted"] += 1
                else:
                    counts[f"valid rejected: {reason}"] += 1
                if accepted != (reason is None):
                    wrongly_judged.append((test["tcId"], test["comment"]))
            else:
                counts[f"acceptable {'accepted' if accepted else 'rejected'}"] += 1

    print("\nWycheproof JWS:", dict(sorted(counts.items())))
    assert wrongly_judged == []
    assert counts["run"] >= vectors["numberOfTests"]
    assert counts["valid accepted"] >= 20
    assert counts["invalid rejected"] == sum(
        t["result"] == "invalid" for g in vectors["testGroups"] for t in g["tests"]
    )


def run_signature_vectors(file_name: str, alg: str) -> collections.Counter[str]:
    vectors = json.loads((VECTORS / file_name).read_text())
    counts: collections.Counter[str] = collections.Counter()
    wrongly_judged = []
    for group in vectors["testGroups"]:
        key = serialization.load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
        for test in group["tests"]:
            parsed = ParsedJws(
                header={"alg": alg},
                payload=b"",
                signing_input=bytes.fromhex(test["msg"]),
                signature=bytes.fromhex(test["sig"]),
            )
            try:
                verify_signature(parsed, alg, key)
                accepted = True
            except JwsError:
                accepted = False
            counts["run"] += 1
            counts[f"{test['result']} {'accepted' if accepted else 'rejected'}"] += 1
            if test["result"] != "acceptable" and accepted != (test["result"] == "valid"):
                wrongly_judged.append((test["tcId"], test["comment"]))
    print(f"\nWycheproof {file_name}:", dict(sorted(counts.items())))
    assert wrongly_judged == []
    assert counts["run"] == vectors["numberOfTests"]
    return counts


def test_wycheproof_p256_p1363_signatures_are_judged_correctly() -> None:
    counts = run_signature_vectors("ecdsa_secp256r1_sha256_p1363_test.json", "ES256")
    assert counts["valid accepted"] > 0 and counts["invalid rejected"] > 0


def test_wycheproof_rsa_pkcs1_signatures_are_judged_correctly() -> None:
    counts = run_signature_vectors("rsa_signature_2048_sha256_test.json", "RS256")
    assert counts["valid accepted"] > 0 and counts["invalid rejected"] > 0


# Signing and verifying with every supported algorithm


@pytest.mark.parametrize(
    ("alg", "key_name"),
    [(alg, alg) for alg in sorted(SIGNATURE_ALGORITHMS - {"EdDSA"})]
    + [("EdDSA", "Ed25519"), ("EdDSA", "Ed448")],
)
def test_token_signed_with_supported_algorithm_verifies_and_tampering_fails(
    private_keys: dict[str, Any], alg: str, key_name: str
) -> None:
    private_key = private_keys[key_name]
    token = sign(alg, private_key, {"alg": alg, "kid": "k1"}, b'{"sub":"nf"}')

    parsed = parse_compact(token, max_size=MAX_SIZE)
    verify_signature(parsed, alg, private_key.public_key())
    assert parsed.header == {"alg": alg, "kid": "k1"}
    assert parsed.payload == b'{"sub":"nf"}'

    header, _, signature = token.split(".")
    tampered_token = f"{header}.{encode_json({'sub': 'nf2'})}.{signature}"
    tampered = parse_compact(tampered_token, max_size=MAX_SIZE)
    with pytest.raises(JwsError):
        verify_signature(tampered, alg, private_key.public_key())


@pytest.mark.parametrize(
    ("alg", "key_name"),
    [
        ("ES256", "ES384"),
        ("ES384", "ES256"),
        ("ES512", "ES256"),
        ("RS256", "ES256"),
        ("PS256", "Ed25519"),
        ("EdDSA", "ES256"),
        ("ES256", "RS256"),
    ],
)
def test_key_that_does_not_fit_the_algorithm_is_rejected(
    private_keys: dict[str, Any], alg: str, key_name: str
) -> None:
    signing_input = f"{encode_json({'alg': alg})}.{EMPTY_CLAIMS}"
    parsed = ParsedJws({"alg": alg}, b"{}", signing_input.encode(), b"\x01" * 64)
    with pytest.raises(JwsError, match="does not fit"):
        verify_signature(parsed, alg, private_keys[key_name].public_key())


def test_rsa_key_below_2048_bits_is_rejected() -> None:
    small_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    parsed = parse_compact(sign("RS256", small_key, {"alg": "RS256"}, b"{}"), max_size=MAX_SIZE)
    with pytest.raises(JwsError, match="too small"):
        verify_signature(parsed, "RS256", small_key.public_key())


@pytest.mark.parametrize("alg", ["HS256", "none", "None", "es256", "ES256K", ""])
def test_algorithm_outside_the_supported_set_is_rejected(
    private_keys: dict[str, Any], alg: str
) -> None:
    token = sign("ES256", private_keys["ES256"], {"alg": alg}, b"{}")
    parsed = parse_compact(token, max_size=MAX_SIZE)
    with pytest.raises(JwsError, match="unsupported"):
        verify_signature(parsed, alg, private_keys["ES256"].public_key())


def test_alg_for_key_maps_each_supported_key_type(private_keys: dict[str, Any]) -> None:
    assert alg_for_key(private_keys["ES256"].public_key()) == "ES256"
    assert alg_for_key(private_keys["ES384"].public_key()) == "ES384"
    assert alg_for_key(private_keys["ES512"].public_key()) == "ES512"
    assert alg_for_key(private_keys["RS256"].public_key()) == "RS256"
    assert alg_for_key(private_keys["Ed25519"].public_key()) == "EdDSA"


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256K1()).public_key(),
        lambda: ec.generate_private_key(ec.SECP224R1()).public_key(),
        lambda: x25519.X25519PrivateKey.generate().public_key(),
        lambda: ed448.Ed448PrivateKey.generate().public_key(),
    ],
)
def test_alg_for_key_rejects_other_key_types(make_key: Any) -> None:
    with pytest.raises(JwsError):
        alg_for_key(make_key())


# Attacks on the compact serialization


@pytest.fixture(scope="module")
def es256_token(private_keys: dict[str, Any]) -> str:
    return sign("ES256", private_keys["ES256"], {"alg": "ES256", "kid": "k1"}, b'{"sub":"x"}')


def test_padding_character_in_a_segment_is_rejected(es256_token: str) -> None:
    header, payload, signature = es256_token.split(".")
    for token in (f"{header}=.{payload}.{signature}", f"{header}.{payload}.{signature}="):
        with pytest.raises(JwsError):
            parse_compact(token, max_size=MAX_SIZE)


def test_standard_base64_alphabet_is_rejected(es256_token: str) -> None:
    header, payload, signature = es256_token.split(".")
    for bad in ("+", "/"):
        with pytest.raises(JwsError):
            parse_compact(f"{header}.{payload}.{bad}{signature[1:]}", max_size=MAX_SIZE)


@pytest.mark.parametrize("template", ["{h}..{s}", ".{p}.{s}", "{h}.{p}.", "..", " {h}.{p}.{s}"])
def test_empty_or_whitespace_segment_is_rejected(es256_token: str, template: str) -> None:
    header, payload, signature = es256_token.split(".")
    with pytest.raises(JwsError):
        parse_compact(template.format(h=header, p=payload, s=signature), max_size=MAX_SIZE)


def test_two_or_four_segments_are_rejected(es256_token: str) -> None:
    header, payload, signature = es256_token.split(".")
    for token in (f"{header}.{payload}", f"{es256_token}.{signature}"):
        with pytest.raises(JwsError, match="three segments"):
            parse_compact(token, max_size=MAX_SIZE)


def test_non_canonical_base64url_is_rejected() -> None:
    assert decode_base64url("QQ") == b"A"
    assert decode_base64url("QUE") == b"AA"
    for segment in ("QR", "QUF", "QUFBQ", "Q", "QQ=="):
        with pytest.raises(JwsError):
            decode_base64url(segment)
    with pytest.raises(JwsError, match="non-canonical"):
        parse_compact(f"{EMPTY_CLAIMS}.QR.QQ", max_size=MAX_SIZE)


def test_one_mebibyte_input_is_rejected_before_parsing() -> None:
    token = "eyJhbGciOiJFUzI1NiJ9." + "A" * (1024 * 1024) + ".AAAA"
    started = time.perf_counter()
    with pytest.raises(JwsError, match="too large"):
        parse_compact(token, max_size=8192)
    assert time.perf_counter() - started < 0.01


def test_header_nested_ten_thousand_deep_is_rejected_without_recursion_error() -> None:
    deep_header = ('{"a":' * 10_000 + "1" + "}" * 10_000).encode()
    token = f"{b64url(deep_header)}.{EMPTY_CLAIMS}.AAAA"
    with pytest.raises(JwsError, match="deeply"):
        parse_compact(token, max_size=1024 * 1024)
    with pytest.raises(JwsError):
        load_json_object(b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}")


def test_nesting_up_to_the_limit_is_accepted_and_one_more_is_rejected() -> None:
    assert load_json_object(b'{"a":[[[[[[[1]]]]]]]}', max_depth=8) == {"a": [[[[[[[1]]]]]]]}
    with pytest.raises(JwsError):
        load_json_object(b'{"a":[[[[[[[[1]]]]]]]]}', max_depth=8)
    brackets_in_string = b'{"a":"[[[[[[[[[[[[{{{{\\"{{{{"}'
    assert load_json_object(brackets_in_string, max_depth=1) == {"a": "[" * 12 + '{{{{"{{{{'}


def test_duplicate_member_is_rejected_at_any_level() -> None:
    header = b64url(b'{"alg":"ES256","alg":"none"}')
    with pytest.raises(JwsError, match="duplicate"):
        parse_compact(f"{header}.e30.AAAA", max_size=MAX_SIZE)
    with pytest.raises(JwsError, match="duplicate"):
        load_json_object(b'{"a":[{"b":1,"b":2}]}')


def test_header_that_is_not_utf8_is_rejected() -> None:
    for header in (b'{"alg":"\xff"}', b'\xef\xbb\xbf{"alg":"ES256"}', b'{"alg":"\xc0\xaf"}'):
        with pytest.raises(JwsError):
            parse_compact(f"{b64url(header)}.e30.AAAA", max_size=MAX_SIZE)
    with pytest.raises(JwsError):
        load_json_object(b'{"alg":"\\ud800"}')


def test_huge_integer_is_rejected() -> None:
    with pytest.raises(JwsError, match="integer"):
        load_json_object(b'{"exp":' + b"9" * 21 + b"}")
    with pytest.raises(JwsError, match="integer"):
        load_json_object(b'{"exp":-' + b"9" * 5000 + b"}")
    assert load_json_object(b'{"exp":' + b"9" * 20 + b"}") == {"exp": 10**20 - 1}


def test_nan_infinity_and_overflowing_float_are_rejected() -> None:
    for document in (b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":1e400}'):
        with pytest.raises(JwsError):
            load_json_object(document)
    assert load_json_object(b'{"a":1.5e3}') == {"a": 1500.0}


@pytest.mark.parametrize("document", [b"[]", b'"alg"', b"1", b"null", b"", b"{", b"{}x"])
def test_json_that_is_not_one_object_is_rejected(document: bytes) -> None:
    with pytest.raises(JwsError):
        load_json_object(document)


def test_der_encoded_ecdsa_signature_is_rejected(private_keys: dict[str, Any]) -> None:
    private_key = private_keys["ES256"]
    signing_input = f"{ES256_HEADER}.{EMPTY_CLAIMS}"
    der = private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    parsed = parse_compact(f"{signing_input}.{b64url(der)}", max_size=MAX_SIZE)
    with pytest.raises(JwsError):
        verify_signature(parsed, "ES256", private_key.public_key())


@pytest.mark.parametrize("r", [0, 1, P256_ORDER - 1, P256_ORDER, 2**256 - 1])
@pytest.mark.parametrize("s", [0, 1, P256_ORDER - 1, P256_ORDER])
def test_ecdsa_special_r_and_s_values_are_rejected(
    private_keys: dict[str, Any], r: int, s: int
) -> None:
    signing_input = f"{ES256_HEADER}.{EMPTY_CLAIMS}"
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    parsed = parse_compact(f"{signing_input}.{b64url(signature)}", max_size=MAX_SIZE)
    with pytest.raises(JwsError):
        verify_signature(parsed, "ES256", private_keys["ES256"].public_key())


def public_key_encodings(public_key: Any) -> list[bytes]:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        jwk = {
            "kty": "RSA",
            "n": b64url(numbers.n.to_bytes(256, "big")),
            "e": b64url(numbers.e.to_bytes(3, "big")),
        }
    else:
        numbers = public_key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    return [pem, der, json.dumps(jwk).encode(), pem.replace(b"\n", b"\r\n")]


@pytest.mark.parametrize(("configured_alg", "key_name"), [("RS256", "RS256"), ("ES256", "ES256")])
def test_hmac_signed_with_the_public_key_bytes_is_rejected(
    private_keys: dict[str, Any], configured_alg: str, key_name: str
) -> None:
    public_key = private_keys[key_name].public_key()
    signing_input = f"{encode_json({'alg': 'HS256'})}.{encode_json({'sub': 'x'})}"
    for secret in public_key_encodings(public_key):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        parsed = parse_compact(f"{signing_input}.{b64url(mac)}", max_size=MAX_SIZE)
        assert parsed.header["alg"] != configured_alg
        with pytest.raises(JwsError):
            verify_signature(parsed, configured_alg, public_key)
        with pytest.raises(JwsError):
            verify_signature(parsed, "HS256", public_key)


def test_alg_none_is_rejected(private_keys: dict[str, Any]) -> None:
    signing_input = f"{encode_json({'alg': 'none'})}.{encode_json({'sub': 'x'})}"
    with pytest.raises(JwsError):
        parse_compact(f"{signing_input}.", max_size=MAX_SIZE)
    parsed = parse_compact(f"{signing_input}.AAAA", max_size=MAX_SIZE)
    with pytest.raises(JwsError):
        verify_signature(parsed, "none", private_keys["ES256"].public_key())
    with pytest.raises(JwsError):
        verify_signature(parsed, "ES256", private_keys["ES256"].public_key())


def test_rsa_signature_with_a_prepended_zero_byte_is_rejected(
    private_keys: dict[str, Any],
) -> None:
    token = sign("RS256", private_keys["RS256"], {"alg": "RS256"}, b"{}")
    header, payload, signature = token.split(".")
    padded = b64url(b"\x00" + decode_base64url(signature))
    parsed = parse_compact(f"{header}.{payload}.{padded}", max_size=MAX_SIZE)
    with pytest.raises(JwsError):
        verify_signature(parsed, "RS256", private_keys["RS256"].public_key())


def test_signing_input_is_the_ascii_of_the_first_two_segments(es256_token: str) -> None:
    parsed = parse_compact(es256_token, max_size=MAX_SIZE)
    assert parsed.signing_input == es256_token.rsplit(".", 1)[0].encode("ascii")
