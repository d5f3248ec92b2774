"""A catalogue of known attacks on bearer tokens, CCAs and credential headers, one case per test,
each sent through the middleware and checked for its status, its cause and a handler not run.

Cases already pinned down by the access-token and set-token tests are not repeated here.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import quote
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sbi_setauth.testing import NfCertificate

from .conftest import (
    AMF_SET,
    OTHER_AMF_SET,
    Answer,
    Pki,
    Producer,
    bearer,
    binding,
    build_producer,
)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
FAST = 0.5
CCA = "3gpp-Sbi-Client-Credentials"
BINDING = "3gpp-Sbi-Binding"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def as_json(document: bytes | dict[str, Any]) -> bytes:
    return document if isinstance(document, bytes) else json.dumps(document).encode()


def raw_signature(pki: Pki, signing_input: str) -> bytes:
    der = pki.nrf.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def nrf_signed(pki: Pki, header: bytes | dict[str, Any], payload: bytes | dict[str, Any]) -> str:
    """A token whose header and payload bytes are exactly as given, signed with the NRF key."""
    signing_input = b64url(as_json(header)) + "." + b64url(as_json(payload))
    return signing_input + "." + b64url(raw_signature(pki, signing_input))


def token_header(pki: Pki, **changes: Any) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "JWT", "kid": pki.nrf.kid, **changes}


def token_claims(pki: Pki, amf: NfCertificate, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": pki.nrf.nrf_instance_id, "sub": amf.nf_instance_id, "aud": "UDM",
        "scope": "nudm-sdm", "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
    }
    claims.update(changes)
    return claims


def with_member(document: dict[str, Any], raw_member: str) -> bytes:
    """The JSON of `document` with `raw_member` (e.g. `"exp": null`) written in at the end."""
    return (json.dumps(document)[:-1] + ", " + raw_member + "}").encode()


def refused(answer: Answer, status: int, cause: str) -> None:
    assert (answer.status, answer.cause) == (status, cause), answer.body
    assert not answer.handler_ran
    assert answer.json()["detail"]


async def timed(coroutine: Any) -> tuple[Answer, float]:
    started = time.perf_counter()
    answer = await coroutine
    return answer, time.perf_counter() - started


@pytest.fixture
def amf(pki: Pki) -> NfCertificate:
    return pki.amf(None)


async def test_hand_signed_token_with_valid_claims_is_accepted(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    token = nrf_signed(pki, token_header(pki), token_claims(pki, amf))
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert answer.status == 200 and answer.handler_ran


# Key ID injection


KID_INJECTIONS = {
    "null-byte": "nrf-key-1\x00",
    "null-byte-before": "\x00nrf-key-1",
    "crlf": "nrf-key-1\r\nX-Injected: 1",
    "trailing-space": "nrf-key-1 ",
    "upper-case": "NRF-KEY-1",
    "hyphen-look-alike": "nrf\u2010key\u20101",
    "url-encoded-traversal": "..%2f..%2fetc%2fpasswd",
    "windows-traversal": "..\\..\\nrf.jwks",
    "sql-comment": "nrf-key-1'--",
    "sql-union": "x' UNION SELECT 'nrf-key-1",
    "five-kib": "k" * 5 * 1024,
    "just-over-kid-limit": "k" * 257,
}


@pytest.mark.parametrize("kid", KID_INJECTIONS.values(), ids=KID_INJECTIONS.keys())
async def test_injected_kid_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, kid: str
) -> None:
    token = nrf_signed(pki, token_header(pki, kid=kid), token_claims(pki, amf))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


async def test_ten_kib_kid_makes_the_authorization_header_too_large(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    token = nrf_signed(pki, token_header(pki, kid="k" * 10 * 1024), token_claims(pki, amf))
    refused(await producer.request(headers=bearer(token), peer=amf), 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "kid", [1, 1.5, True, {"kid": "nrf-key-1"}, [], ["nrf-key-1", "x"]],
    ids=["integer", "float", "boolean", "object", "empty-list", "two-element-list"],
)
async def test_kid_that_is_not_a_string_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, kid: Any
) -> None:
    token = nrf_signed(pki, token_header(pki, kid=kid), token_claims(pki, amf))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


# JOSE header parameters that change how the token is read


@pytest.mark.parametrize(
    "extra",
    [{"b64": False}, {"b64": True}, {"zip": "DEF"}, {"enc": "A128GCM"}, {"alg": "es256"},
     {"alg": "ES256 "}, {"alg": ["ES256"]}, {"typ": "JWT\x00"}],
    ids=["b64-false-without-crit", "b64-true", "zip", "enc", "alg-lower-case",
         "alg-trailing-space", "alg-list", "typ-null-byte"],
)
async def test_header_parameter_that_changes_processing_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, extra: dict[str, Any]
) -> None:
    token = nrf_signed(pki, token_header(pki, **extra), token_claims(pki, amf))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


# ECDSA signature encodings


SPECIAL_SCALARS = {"0": 0, "1": 1, "n-1": P256_ORDER - 1, "n": P256_ORDER, "n+1": P256_ORDER + 1}


@pytest.mark.parametrize("component", ["r", "s"])
@pytest.mark.parametrize("value", SPECIAL_SCALARS.values(), ids=SPECIAL_SCALARS.keys())
async def test_ecdsa_signature_with_special_scalar_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, component: str, value: int
) -> None:
    genuine = nrf_signed(pki, token_header(pki), token_claims(pki, amf))
    signing_input, signature = genuine.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "==")
    special = value.to_bytes(32, "big")
    forged = special + raw[32:] if component == "r" else raw[:32] + special
    token = signing_input + "." + b64url(forged)
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


async def test_ecdsa_signature_of_all_zeros_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    genuine = nrf_signed(pki, token_header(pki), token_claims(pki, amf))
    token = genuine.rsplit(".", 1)[0] + "." + b64url(bytes(64))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


async def test_der_encoded_token_signature_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    signing_input = b64url(as_json(token_header(pki))) + "." + b64url(
        as_json(token_claims(pki, amf))
    )
    der = pki.nrf.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    token = signing_input + "." + b64url(der)
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


# JSON that parsers disagree on


def duplicate_header_cases(pki: Pki) -> dict[str, bytes]:
    kid = json.dumps(pki.nrf.kid)
    return {
        "alg-none-then-es256": f'{{"alg":"none","alg":"ES256","kid":{kid}}}'.encode(),
        "alg-es256-then-none": f'{{"alg":"ES256","alg":"none","kid":{kid}}}'.encode(),
        "kid-twice": f'{{"alg":"ES256","kid":"other","kid":{kid}}}'.encode(),
        "kid-in-nested-duplicate": f'{{"alg":"ES256","kid":{kid},"x":{{"a":1,"a":2}}}}'.encode(),
    }


@pytest.mark.parametrize(
    "case", ["alg-none-then-es256", "alg-es256-then-none", "kid-twice", "kid-in-nested-duplicate"]
)
async def test_duplicate_member_in_token_header_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, case: str
) -> None:
    token = nrf_signed(pki, duplicate_header_cases(pki)[case], token_claims(pki, amf))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


async def test_set_claim_given_twice_with_different_sets_is_invalid_token(
    pki: Pki, producer: Producer
) -> None:
    amf = pki.amf()
    claims = token_claims(pki, amf, consumerNfSetId=AMF_SET)
    payload = with_member(claims, f'"consumerNfSetId": "{OTHER_AMF_SET}"')
    token = nrf_signed(pki, token_header(pki), payload)
    headers = {**bearer(token), BINDING: binding(OTHER_AMF_SET)}
    refused(await producer.request(headers=headers, peer=amf), 401, "ACCESS_TOKEN_INVALID")


async def test_exp_given_twice_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    claims = token_claims(pki, amf, exp=int(time.time()) - 3600)
    token = nrf_signed(pki, token_header(pki), with_member(claims, f'"exp": {2**40}'))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


def non_utf8_payloads(pki: Pki, amf: NfCertificate) -> dict[str, bytes]:
    claims = token_claims(pki, amf)
    return {
        "invalid-byte-in-claim": with_member(claims, '"note": "\xff"').replace(
            b"\xc3\xbf", b"\xff"
        ),
        "overlong-slash": with_member(claims, '"note": "x"').replace(b'"x"', b'"\xc0\xaf"'),
        "latin1-name": with_member(claims, '"caf\xe9": 1').replace(b"\xc3\xa9", b"\xe9"),
        "lone-surrogate-escape": with_member(claims, '"note": "\\ud800"'),
        "byte-order-mark": b"\xef\xbb\xbf" + json.dumps(claims).encode(),
        "utf16": json.dumps(claims).encode("utf-16"),
    }


NON_UTF8 = ["invalid-byte-in-claim", "overlong-slash", "latin1-name", "lone-surrogate-escape",
            "byte-order-mark", "utf16"]


@pytest.mark.parametrize("case", NON_UTF8)
async def test_payload_that_is_not_strict_utf8_json_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, case: str
) -> None:
    token = nrf_signed(pki, token_header(pki), non_utf8_payloads(pki, amf)[case])
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


@pytest.mark.parametrize(
    "header",
    [b'{"alg":"ES256","kid":"nrf-key-1","x":"\xff"}', b'\xef\xbb\xbf{"alg":"ES256"}',
     b'{"alg":"ES256","kid":"nrf-key-\\udc80"}'],
    ids=["invalid-byte", "byte-order-mark", "lone-surrogate-escape"],
)
async def test_header_that_is_not_strict_utf8_json_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, header: bytes
) -> None:
    token = nrf_signed(pki, header, token_claims(pki, amf))
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


# Numbers and time claims of the wrong shape


RAW_TIME_CLAIMS = {
    "exp-five-thousand-digits": '"exp": 1' + "0" * 5000,
    "exp-overflowing-float": '"exp": 1e999',
    "exp-negative": '"exp": -1',
    "exp-two-to-the-53": f'"exp": {2**53}',
    "exp-null": '"exp": null',
    "exp-object": '"exp": {"value": 9999999999}',
    "exp-integral-float": '"exp": 9999999999.0',
    "exp-exponent-string": '"exp": "1e10"',
    "exp-nan": '"exp": NaN',
    "iat-two-to-the-64": f'"iat": {2**64}',
    "nbf-huge": '"nbf": 10000000000000000000000000',
    "nbf-null": '"nbf": null',
}


@pytest.mark.parametrize("member", RAW_TIME_CLAIMS.values(), ids=RAW_TIME_CLAIMS.keys())
async def test_time_claim_of_wrong_shape_is_invalid_token(
    pki: Pki, producer: Producer, amf: NfCertificate, member: str
) -> None:
    claims = token_claims(pki, amf)
    claims.pop(member.split('"')[1], None)
    token = nrf_signed(pki, token_header(pki), with_member(claims, member))
    assert len(token) < 8192
    refused(await producer.request(headers=bearer(token), peer=amf), 401, "ACCESS_TOKEN_INVALID")


# NF Set IDs that look like the real one


SET_LOOK_ALIKES = {
    "trailing-dot": AMF_SET + ".",
    "cyrillic-a": AMF_SET.replace("amfset", "\u0430mfset"),
    "kelvin-sign": "setK1.amfset.5gc.mnc001.mcc001".replace("K", "\u212a"),
    "fullwidth-digit": AMF_SET.replace("set1", "set\uff11"),
    "null-byte": AMF_SET + "\x00",
    "fqdn-form": AMF_SET + ".3gppnetwork.org",
    "leading-space": " " + AMF_SET,
    "two-digit-mnc": "set1.amfset.5gc.mnc01.mcc001",
}


@pytest.mark.parametrize("look_alike", SET_LOOK_ALIKES.values(), ids=SET_LOOK_ALIKES.keys())
async def test_look_alike_set_in_token_claim_is_invalid_token(
    pki: Pki, producer: Producer, look_alike: str
) -> None:
    amf = pki.amf()
    token = nrf_signed(pki, token_header(pki), token_claims(pki, amf, consumerNfSetId=look_alike))
    headers = {**bearer(token), BINDING: binding(AMF_SET)}
    refused(await producer.request(headers=headers, peer=amf), 401, "ACCESS_TOKEN_INVALID")


HEADER_LOOK_ALIKES = ["cyrillic-a", "kelvin-sign", "fullwidth-digit", "fqdn-form"]


@pytest.mark.parametrize(
    "look_alike", [SET_LOOK_ALIKES[name] for name in HEADER_LOOK_ALIKES], ids=HEADER_LOOK_ALIKES
)
async def test_look_alike_set_in_binding_header_is_invalid_request(
    pki: Pki, producer: Producer, look_alike: str
) -> None:
    amf = pki.amf()
    raw = [(b"3gpp-sbi-binding", binding(look_alike).encode("utf-8"))]
    answer = await producer.request(headers=bearer(pki.set_token(amf)), peer=amf, raw_headers=raw)
    refused(answer, 400, "INVALID_REQUEST")


async def test_null_byte_in_binding_set_is_invalid_request(pki: Pki, producer: Producer) -> None:
    amf = pki.amf()
    headers = {**bearer(pki.set_token(amf)), BINDING: binding(AMF_SET + "\x00")}
    refused(await producer.request(headers=headers, peer=amf), 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "look_alike",
    [SET_LOOK_ALIKES[name] for name in ("trailing-dot", "cyrillic-a", "kelvin-sign")],
    ids=["trailing-dot", "cyrillic-a", "kelvin-sign"],
)
async def test_look_alike_set_in_cca_is_cca_failure(
    pki: Pki, producer: Producer, look_alike: str
) -> None:
    amf = pki.amf()
    headers = {
        **bearer(pki.set_token(amf)), BINDING: binding(AMF_SET), CCA: amf.cca(nf_set_id=look_alike)
    }
    refused(await producer.request(headers=headers, peer=amf), 403, "CCA_VERIFICATION_FAILURE")


async def test_custom_set_header_twice_with_different_sets_is_invalid_request(pki: Pki) -> None:
    producer = build_producer(pki.settings(set_header="X-Consumer-Set"))
    amf = pki.amf()
    headers = [
        *bearer(pki.set_token(amf)).items(),
        ("X-Consumer-Set", AMF_SET),
        ("X-Consumer-Set", OTHER_AMF_SET),
    ]
    refused(await producer.request(headers=headers, peer=amf), 400, "INVALID_REQUEST")


# Credential headers repeated, oddly cased or oddly formed


async def test_authorization_in_two_spellings_is_invalid_request(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    token = pki.instance_token(amf)
    headers = [("AUTHORIZATION", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
    refused(await producer.request(headers=headers, peer=amf), 400, "INVALID_REQUEST")


async def test_header_name_left_in_upper_case_by_a_server_is_not_a_token(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    raw = [(b"AUTHORIZATION", f"Bearer {pki.instance_token(amf)}".encode())]
    answer = await producer.request(peer=amf, raw_headers=raw)
    refused(answer, 401, "ACCESS_TOKEN_MISSING")


@pytest.mark.parametrize(
    "value,status,cause",
    [
        (b"Bearer a.b.c d.e.f", 400, "INVALID_REQUEST"),
        (b"Bearer\ta.b.c", 401, "ACCESS_TOKEN_MISSING"),
        (b"Bearer \xffa.b.c", 400, "INVALID_REQUEST"),
        (b"Bearer a.b.c\x00", 401, "ACCESS_TOKEN_INVALID"),
    ],
    ids=["two-tokens", "tab-separator", "non-ascii", "null-byte"],
)
async def test_odd_authorization_value_is_never_accepted(
    pki: Pki, producer: Producer, amf: NfCertificate, value: bytes, status: int, cause: str
) -> None:
    answer = await producer.request(peer=amf, raw_headers=[(b"authorization", value)])
    refused(answer, status, cause)


async def test_cca_header_twice_is_invalid_request(pki: Pki, producer: Producer) -> None:
    amf = pki.amf()
    cca = amf.cca()
    headers = [*bearer(pki.instance_token(amf)).items(), (CCA, cca), (CCA.upper(), cca)]
    refused(await producer.request(headers=headers, peer=amf), 400, "INVALID_REQUEST")


async def test_one_mebibyte_cca_is_cca_failure_quickly(pki: Pki, producer: Producer) -> None:
    amf = pki.amf()
    cca = amf.cca()
    header, payload, signature = cca.split(".")
    huge = f"{header}.{payload}{'A' * 2**20}.{signature}"
    headers = {**bearer(pki.instance_token(amf)), CCA: huge}
    answer, elapsed = await timed(producer.request(headers=headers, peer=amf))
    refused(answer, 403, "CCA_VERIFICATION_FAILURE")
    assert elapsed < FAST


async def test_cca_leaf_with_unknown_key_algorithm_is_cca_failure(
    pki: Pki, producer: Producer
) -> None:
    amf = pki.amf()
    ec_public_key_oid = bytes.fromhex("06072a8648ce3d0201")
    leaf = amf.chain_der[0]
    assert ec_public_key_oid in leaf
    mangled = leaf.replace(ec_public_key_oid, bytes.fromhex("06073e8648ce3d0201"), 1)
    headers = {**bearer(pki.instance_token(amf)), CCA: amf.cca(x5c=[mangled])}
    refused(await producer.request(headers=headers, peer=amf), 403, "CCA_VERIFICATION_FAILURE")


# Very many headers


def junk_headers(count: int) -> list[tuple[bytes, bytes]]:
    return [(f"x-junk-{n}".encode(), b"v" * 16) for n in range(count)]


async def test_ten_thousand_junk_headers_still_get_a_correct_answer_quickly(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    raw = junk_headers(10_000)
    answer, elapsed = await timed(
        producer.request(headers=bearer(pki.instance_token(amf)), peer=amf, raw_headers=raw)
    )
    assert answer.status == 200 and answer.handler_ran
    assert elapsed < FAST

    answer, elapsed = await timed(producer.request(peer=amf, raw_headers=raw))
    refused(answer, 401, "ACCESS_TOKEN_MISSING")
    assert elapsed < FAST


async def test_ten_thousand_authorization_headers_are_invalid_request_quickly(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    raw = [(b"authorization", f"Bearer {pki.instance_token(amf)}".encode())] * 10_000
    answer, elapsed = await timed(producer.request(peer=amf, raw_headers=raw))
    refused(answer, 400, "INVALID_REQUEST")
    assert elapsed < FAST


async def test_ten_thousand_binding_lines_are_invalid_request_quickly(
    pki: Pki, producer: Producer
) -> None:
    amf = pki.amf()
    raw = [(b"3gpp-sbi-binding", binding(AMF_SET).encode())] * 10_000
    answer, elapsed = await timed(
        producer.request(headers=bearer(pki.set_token(amf)), peer=amf, raw_headers=raw)
    )
    refused(answer, 400, "INVALID_REQUEST")
    assert elapsed < FAST


# What a rejection writes back


def assert_clean_header_values(answer: Answer) -> None:
    for name, value in answer.headers.items():
        assert value.isprintable() and value.isascii(), (name, value[:80])
        assert len(value) <= 1024, (name, len(value))


async def test_hostile_host_header_does_not_shape_the_challenge(
    pki: Pki, producer: Producer
) -> None:
    raw = [(b"host", b'evil.example", error="none\r\nSet-Cookie: a=b')]
    answer = await producer.request(raw_headers=raw)
    refused(answer, 401, "ACCESS_TOKEN_MISSING")
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="https://udm.example.org/nudm-sdm/v2"'
    )
    assert_clean_header_values(answer)


@pytest.mark.parametrize(
    "path",
    ["/\r\nSet-Cookie: session=attacker/v1/x", "/nudm\x00sdm/v2/x", "/\x1b[31mred/v1"],
    ids=["crlf", "null-byte", "escape-sequence"],
)
async def test_unknown_service_with_control_characters_is_not_reflected_raw(
    pki: Pki, producer: Producer, amf: NfCertificate, path: str
) -> None:
    answer = await producer.request(path, headers=bearer(pki.instance_token(amf)), peer=amf)
    refused(answer, 403, "INSUFFICIENT_SCOPE")
    assert_clean_header_values(answer)


async def test_long_unknown_service_name_is_not_reflected_unbounded(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    path = "/" + "s" * 20_000 + "/v1/x"
    answer = await producer.request(path, headers=bearer(pki.instance_token(amf)), peer=amf)
    refused(answer, 403, "INSUFFICIENT_SCOPE")
    assert_clean_header_values(answer)
    assert len(answer.body) <= 4096


# Certificates whose X.509 version field is out of range


def bad_version(der: bytes) -> bytes:
    """The certificate with its version field set to 106, which no X.509 version is."""
    version_3 = bytes.fromhex("a003020102")
    assert der.find(version_3) < 16
    return der.replace(version_3, bytes.fromhex("a00302016a"), 1)


def pem_of(der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("position", [0, 1], ids=["leaf", "second"])
async def test_cca_x5c_entry_with_invalid_version_is_cca_failure(
    pki: Pki, producer: Producer, position: int
) -> None:
    amf = pki.amf()
    x5c = [amf.chain_der[0], amf.chain_der[0]]
    x5c[position] = bad_version(x5c[position])
    headers = {**bearer(pki.instance_token(amf)), CCA: amf.cca(x5c=x5c)}
    refused(await producer.request(headers=headers, peer=amf), 403, "CCA_VERIFICATION_FAILURE")


async def test_peer_certificate_with_invalid_version_is_peer_certificate_invalid(
    pki: Pki, producer: Producer, amf: NfCertificate
) -> None:
    peer = [pem_of(bad_version(amf.chain_der[0]))]
    answer = await producer.request(headers=bearer(pki.instance_token(amf)), peer=peer)
    refused(answer, 403, "PEER_CERTIFICATE_INVALID")


@pytest.mark.parametrize("source", ["xfcc", "client-cert"])
async def test_forwarded_certificate_with_invalid_version_is_peer_certificate_invalid(
    pki: Pki, amf: NfCertificate, source: str
) -> None:
    producer = build_producer(pki.settings(peer_cert=source, trusted_proxies="127.0.0.1"))
    der = bad_version(amf.chain_der[0])
    if source == "xfcc":
        header = ("x-forwarded-client-cert", 'Cert="' + quote(pem_of(der), safe="") + '"')
    else:
        header = ("client-cert", ":" + base64.b64encode(der).decode("ascii") + ":")
    answer = await producer.request(headers=[*bearer(pki.instance_token(amf)).items(), header])
    refused(answer, 403, "PEER_CERTIFICATE_INVALID")
