"""Every rejection is answered in bounded time: the slowest inputs an attacker can craft within the
size caps are timed through the middleware, printed as a table, and held under half a second.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sbi_setauth.testing import CA, NfCertificate, sign_jws

from .conftest import AMF_SET, Pki, Producer, bearer, build_producer

SLOWEST_ALLOWED = 0.5
RUNS = 3
CCA = "3gpp-Sbi-Client-Credentials"
MAX_AUTHORIZATION = 8192
MAX_TOKEN = MAX_AUTHORIZATION - len("Bearer ")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(header: bytes, payload: bytes = b"{}") -> str:
    return f"{b64url(header)}.{b64url(payload)}.{b64url(bytes(64))}"


def fill_json(prefix: bytes, unit: bytes, suffix: bytes, encoded_budget: int) -> bytes:
    """`prefix + unit * n + suffix` with the largest n whose base64url fits `encoded_budget`."""
    count = (encoded_budget * 3 // 4 - len(prefix) - len(suffix)) // len(unit)
    return prefix + unit * max(count, 0) + suffix


@dataclass
class Case:
    """One crafted request and the answers it may get."""

    label: str
    request: Callable[[], Any]
    causes: set[str]
    seconds: list[float] = field(default_factory=list)
    detail: str = ""


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def looping_chain(anchor: CA, key: Any) -> tuple[NfCertificate, list[bytes]]:
    """A leaf and seven intermediates named alike: six share one key, the seventh is issued by
    the trusted CA under another key, so path building meets many candidates and none works."""
    base = CA(common_name="Loop CA", private_key=key)
    variants = [
        CA(common_name="Loop CA", private_key=key, parent=base, path_length=length)
        for length in (None, 0, 1, 2, 3, None)
    ]
    cross_signed = anchor.issue_intermediate(common_name="Loop CA")
    leaf = base.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    chain = [der(leaf.certificate)] + [der(v.certificate) for v in [*variants, cross_signed]]
    return leaf, chain


def padded_certificate(issuer: CA, size: int) -> bytes:
    """A CA-issued NF certificate carrying a private extension that pads it to about `size`."""
    padding = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x04\x82"
                                         + (size - 700).to_bytes(2, "big") + b"p" * (size - 700))
    nf = issuer.issue_nf_certificate(nf_type="AMF", extra_extensions=[(padding, False)])
    return der(nf.certificate)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Producer, Producer]:
    pki = Pki(Path(tmp_path_factory.mktemp("bounded")))
    producer = build_producer(pki.settings())
    proxied = build_producer(
        pki.settings(peer_cert="xfcc", trusted_proxies="127.0.0.1")
    )
    return pki, producer, proxied


def crafted_cases(pki: Pki, producer: Producer, proxied: Producer) -> list[Case]:
    amf = pki.amf(None)
    set_amf = pki.amf()
    token = pki.instance_token(amf)
    kid = pki.nrf.kid

    def send(target: Producer = producer, **options: Any) -> Callable[[], Any]:
        options.setdefault("peer", amf)
        return lambda: target.request(**options)

    def with_token(**headers: str) -> dict[str, str]:
        return {**bearer(token), **headers}

    token_causes = {"INVALID_REQUEST", "ACCESS_TOKEN_INVALID"}
    cca_causes = {"CCA_VERIFICATION_FAILURE"}
    cases: list[Case] = []

    cases.append(Case("Authorization: 8 KiB of dots",
                      send(headers={"Authorization": "Bearer " + "." * MAX_TOKEN}), token_causes))
    cases.append(Case("Authorization: 8 KiB, one segment",
                      send(headers={"Authorization": "Bearer " + "a" * MAX_TOKEN}), token_causes))
    cases.append(Case("Authorization: 8 KiB of 'Bearer '",
                      send(headers={"Authorization": "Bearer " * (MAX_AUTHORIZATION // 7)}),
                      token_causes | {"ACCESS_TOKEN_MISSING"}))
    cases.append(Case("Authorization: 8 KiB of spaces then a token",
                      send(headers={"Authorization": "Bearer" + " " * 8000 + "a.b.c"}),
                      token_causes))

    nested_header = fill_json(b'{"alg":"ES256","x":', b"[", b"", MAX_TOKEN - 100)
    cases.append(Case("token header: unclosed nesting at max size",
                      send(headers=bearer(unsigned_token(nested_header))), token_causes))
    balanced = (MAX_TOKEN - 300) * 3 // 8
    deep = b'{"alg":"ES256","x":' + b"[" * balanced + b"]" * balanced + b"}"
    cases.append(Case("token header: balanced nesting at max size",
                      send(headers=bearer(unsigned_token(deep))), token_causes))
    wide = fill_json(b'{"alg":"ES256","x":[[[[[[[0', b",0", b"]]]]]]]}", MAX_TOKEN - 100)
    cases.append(Case("token header: depth 8, thousands of members",
                      send(headers=bearer(unsigned_token(wide))), token_causes))
    escapes = fill_json(b'{"alg":"ES256","x":"', b"\\u0000", b'"}', MAX_TOKEN - 100)
    cases.append(Case("token header: string of escapes at max size",
                      send(headers=bearer(unsigned_token(escapes))), token_causes))
    unterminated = fill_json(b'{"alg":"ES256","x":"', b'\\"', b"", MAX_TOKEN - 100)
    cases.append(Case("token header: unterminated escaped quotes",
                      send(headers=bearer(unsigned_token(unterminated))), token_causes))
    numbers = fill_json(b'{"alg":"ES256","x":[', b"1e308,", b"1]}", MAX_TOKEN - 100)
    cases.append(Case("token header: thousands of large floats",
                      send(headers=bearer(unsigned_token(numbers))), token_causes))

    nested_payload = b'{"a":' * 900 + b"1" + b"}" * 900
    signed_nested = sign_jws(nested_payload, pki.nrf.private_key, header={"kid": kid})
    cases.append(Case("token: NRF-signed payload nested 900 deep",
                      send(headers=bearer(signed_nested)), token_causes))
    many_claims = {f"c{n}": n for n in range(400)}
    signed_many = sign_jws(many_claims, pki.nrf.private_key, header={"kid": kid})
    cases.append(Case("token: NRF-signed payload of 400 unknown claims",
                      send(headers=bearer(signed_many)), token_causes))
    big_kid = sign_jws({"sub": "x"}, pki.nrf.private_key, header={"kid": "k" * 8192})
    cases.append(Case("token: 8 KiB kid",
                      send(headers=bearer(big_kid)), token_causes))
    fitting_kid = sign_jws({"sub": "x"}, pki.nrf.private_key, header={"kid": "k" * 5800})
    cases.append(Case("token: 5.8 KiB kid (fits the header cap)",
                      send(headers=bearer(fitting_kid)), token_causes))

    big_certs = [padded_certificate(pki.ca, 8 * 1024) for _ in range(8)]
    cases.append(Case("CCA: x5c of 8 x 8 KiB certificates",
                      send(headers=with_token(**{CCA: amf.cca(x5c=big_certs)})), cca_causes))
    untrusted = CA().issue_nf_certificate(amf.nf_instance_id, nf_type="AMF")
    fitting = [padded_certificate(pki.ca, 2400) for _ in range(7)]
    padded_cca = untrusted.cca(x5c=[untrusted.chain_der[0], *fitting])
    assert len(padded_cca) < 32 * 1024
    cases.append(Case("CCA: untrusted leaf + 7 padded certificates under 32 KiB",
                      send(headers=with_token(**{CCA: padded_cca})), cca_causes))
    ec_leaf, ec_loop = looping_chain(pki.ca, ec.generate_private_key(ec.SECP256R1()))
    cases.append(Case("CCA: 7 intermediates, one subject, one P-256 key",
                      send(headers=with_token(**{CCA: ec_leaf.cca(x5c=ec_loop)})), cca_causes))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    rsa_leaf, rsa_loop = looping_chain(pki.ca, rsa_key)
    cases.append(Case("CCA: 7 intermediates, one subject, one RSA-4096 key",
                      send(headers=with_token(**{CCA: rsa_leaf.cca(x5c=rsa_loop)})), cca_causes))
    loop_pem = [
        x509.load_der_x509_certificate(item).public_bytes(serialization.Encoding.PEM).decode()
        for item in rsa_loop
    ]
    cases.append(Case("peer chain: 7 intermediates, one subject, one RSA-4096 key",
                      send(headers=bearer(token), peer=loop_pem), {"PEER_CERTIFICATE_INVALID"}))
    cases.append(Case("peer chain: 1000 junk entries",
                      send(headers=bearer(token), peer=["-----BEGIN CERTIFICATE-----"] * 1000),
                      {"PEER_CERTIFICATE_INVALID"}))
    junk_pem = ["-----BEGIN CERTIFICATE-----" + "A" * 65536] * 8
    cases.append(Case("peer chain: 8 unterminated 64 KiB PEM blocks",
                      send(headers=bearer(token), peer=junk_pem), {"PEER_CERTIFICATE_INVALID"}))

    cca_dots = "." * 32 * 1024
    cases.append(Case("CCA: 32 KiB of dots", send(headers=with_token(**{CCA: cca_dots})),
                      cca_causes))
    nested_cca = (b64url(b'{"alg":"ES256","x":' + b"[" * 23000) + ".e30.AAAA")[: 32 * 1024]
    cases.append(Case("CCA: header of unclosed nesting at 32 KiB",
                      send(headers=with_token(**{CCA: nested_cca})), cca_causes))
    payload_nested = (
        b64url(json.dumps({"alg": "ES256", "x5c": ["AAAA"]}).encode())
        + "." + b64url(b"[" * 23000) + ".AAAA"
    )[: 32 * 1024]
    cases.append(Case("CCA: payload of unclosed nesting at 32 KiB",
                      send(headers=with_token(**{CCA: payload_nested})), cca_causes))

    set_token = pki.set_token(set_amf)
    binding_causes = {"INVALID_REQUEST", "NF_SET_ID_MISSING"}

    def binding_case(label: str, value: str) -> Case:
        headers = {**bearer(set_token), "3gpp-Sbi-Binding": value}
        return Case(label, send(headers=headers, peer=set_amf), binding_causes)

    cases.append(binding_case("binding: 4 KiB of commas", "," * 4096))
    cases.append(binding_case("binding: 4 KiB of ', '", ", " * 2048))
    cases.append(binding_case("binding: 4 KiB of spaces and tabs", " \t" * 2048))
    cases.append(binding_case("binding: one element, 4 KiB of parameters",
                              "bl=nf-set" + "; a=b" * 800))
    cases.append(binding_case("binding: unterminated quoted value",
                              'bl=nf-set; nr="' + '\\"' * 2000))
    cases.append(binding_case("binding: 4 KiB of 'bl=nf-set;'", "bl=nf-set;" * 409))
    cases.append(binding_case("binding: 4 KiB of '='", "bl" + "=" * 4090))

    junk = [(f"x-junk-{n}".encode(), b"v" * 32) for n in range(10_000)]
    cases.append(Case("10,000 junk headers, no token", send(raw_headers=junk),
                      {"ACCESS_TOKEN_MISSING"}))
    empty_binding = [(b"3gpp-sbi-binding", b"")] * 100_000
    cases.append(Case("100,000 empty binding lines, set token",
                      send(headers=bearer(set_token), peer=set_amf, raw_headers=empty_binding),
                      binding_causes))
    cases.append(Case("10,000 Authorization headers",
                      send(raw_headers=[(b"authorization", f"Bearer {token}".encode())] * 10_000),
                      {"INVALID_REQUEST"}))
    cases.append(Case("64 KiB path with a valid token",
                      send(path="/" + "p" * 65536, headers=bearer(token)),
                      {"INSUFFICIENT_SCOPE"}))

    xfcc = ",".join(["By=spiffe://a;Hash=" + "a" * 64] * 900)[:65000]
    cases.append(Case("XFCC: 64 KiB of elements from a trusted proxy",
                      send(proxied, headers={**bearer(token), "x-forwarded-client-cert": xfcc},
                           peer=None),
                      {"PEER_CERTIFICATE_INVALID"}))
    quoted = 'Cert="' + "\\\"" * 32000
    cases.append(Case("XFCC: unterminated quoted Cert of 64 KiB",
                      send(proxied, headers={**bearer(token), "x-forwarded-client-cert": quoted},
                           peer=None),
                      {"PEER_CERTIFICATE_INVALID"}))
    return cases


async def test_every_crafted_rejection_is_answered_in_bounded_time(world) -> None:
    pki, producer, proxied = world
    cases = crafted_cases(pki, producer, proxied)

    for case in cases:
        for _ in range(RUNS):
            started = time.perf_counter()
            answer = await case.request()
            case.seconds.append(time.perf_counter() - started)
            assert not answer.handler_ran, case.label
            assert answer.cause in case.causes, (case.label, answer.status, answer.body[:200])
            case.detail = answer.json()["detail"]

    width = max(len(case.label) for case in cases)
    print(f"\n{'input':<{width}}  slowest of {RUNS}  rejection detail")
    for case in sorted(cases, key=lambda c: -max(c.seconds)):
        print(f"{case.label:<{width}}  {max(case.seconds) * 1000:9.2f} ms  {case.detail[:60]}")
    slowest = max(cases, key=lambda c: max(c.seconds))
    assert max(slowest.seconds) < SLOWEST_ALLOWED, slowest.label
