"""Parsing of client certificates forwarded by a trusted proxy (XFCC and RFC 9440 headers)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbi_setauth.forwarded import (
    ForwardedCertificateError,
    chain_from_client_cert,
    chain_from_xfcc,
    is_trusted_proxy,
    parse_trusted_proxies,
    parse_xfcc,
)


@dataclass(frozen=True)
class Chain:
    """DER certificates of a consumer leaf, its intermediate CA and an unrelated leaf."""

    leaf: bytes
    intermediate: bytes
    other_leaf: bytes


def _certificate(
    common_name: str,
    issuer_name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _make_chain() -> Chain:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    return Chain(
        leaf=_certificate("amf1", "Intermediate CA", leaf_key, ca_key),
        intermediate=_certificate("Intermediate CA", "Root CA", ca_key, ca_key),
        other_leaf=_certificate("smf1", "Intermediate CA", leaf_key, ca_key),
    )


CHAIN = _make_chain()


def pem(*ders: bytes) -> str:
    blocks = []
    for der in ders:
        body = base64.b64encode(der).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        body_lines = "\n".join(lines)
        blocks.append(f"-----BEGIN CERTIFICATE-----\n{body_lines}\n-----END CERTIFICATE-----\n")
    return "".join(blocks)


def url_pem(*ders: bytes) -> str:
    return quote(pem(*ders), safe="")


def sf_binary(der: bytes) -> str:
    return ":" + base64.b64encode(der).decode() + ":"


# x-forwarded-client-cert


def test_envoy_element_with_cert_gives_leaf() -> None:
    header = (
        "By=spiffe://lyft.com/frontend;"
        "Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;"
        f'Cert="{url_pem(CHAIN.leaf)}";'
        'Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";'
        "URI=spiffe://lyft.com/test;DNS=lyft.com;DNS=www.lyft.com"
    )

    assert chain_from_xfcc([header]) == [CHAIN.leaf]


def test_unquoted_cert_value_is_accepted() -> None:
    assert chain_from_xfcc([f"Cert={url_pem(CHAIN.leaf)}"]) == [CHAIN.leaf]


def test_chain_is_returned_leaf_first_when_present() -> None:
    header = f'Cert="{url_pem(CHAIN.leaf)}";Chain="{url_pem(CHAIN.leaf, CHAIN.intermediate)}"'

    assert chain_from_xfcc([header]) == [CHAIN.leaf, CHAIN.intermediate]


def test_chain_without_cert_is_accepted() -> None:
    header = f"Chain={url_pem(CHAIN.leaf, CHAIN.intermediate)}"

    assert chain_from_xfcc([header]) == [CHAIN.leaf, CHAIN.intermediate]


def test_chain_not_starting_with_cert_is_rejected() -> None:
    header = f"Cert={url_pem(CHAIN.other_leaf)};Chain={url_pem(CHAIN.leaf, CHAIN.intermediate)}"

    with pytest.raises(ForwardedCertificateError, match="Chain"):
        chain_from_xfcc([header])


def test_last_element_is_taken_from_nearest_proxy() -> None:
    header = (
        f"By=spiffe://edge;Cert={url_pem(CHAIN.other_leaf)},"
        f"By=spiffe://sidecar;Cert={url_pem(CHAIN.leaf)}"
    )

    assert chain_from_xfcc([header]) == [CHAIN.leaf]


def test_several_header_lines_are_joined_and_last_taken() -> None:
    values = [f"Cert={url_pem(CHAIN.other_leaf)}", f"Cert={url_pem(CHAIN.leaf)}"]

    assert chain_from_xfcc(values) == [CHAIN.leaf]


def test_absent_header_gives_none() -> None:
    assert chain_from_xfcc([]) is None


def test_last_element_without_certificate_is_rejected() -> None:
    header = f"Cert={url_pem(CHAIN.leaf)},By=spiffe://sidecar;Hash=abcd;URI=spiffe://x"

    with pytest.raises(ForwardedCertificateError, match="no Cert"):
        chain_from_xfcc([header])


def test_quoted_values_keep_escaped_quotes_commas_and_semicolons() -> None:
    header = r'Subject="CN=a\"b, O=c;d\\e";URI=spiffe://x,DNS="f,g";Cert=' + url_pem(CHAIN.leaf)

    elements = parse_xfcc([header])

    assert elements == [
        (("Subject", 'CN=a"b, O=c;d\\e'), ("URI", "spiffe://x")),
        (("DNS", "f,g"), ("Cert", url_pem(CHAIN.leaf))),
    ]
    assert chain_from_xfcc([header]) == [CHAIN.leaf]


def test_keys_are_matched_case_insensitively() -> None:
    assert parse_xfcc(["by=a;CERT=b;dns=c"]) == [(("By", "a"), ("Cert", "b"), ("DNS", "c"))]


def test_spaces_around_separators_are_allowed() -> None:
    header = f" By=a ; Cert={url_pem(CHAIN.other_leaf)} , Cert={url_pem(CHAIN.leaf)} "

    assert chain_from_xfcc([header]) == [CHAIN.leaf]


@pytest.mark.parametrize(
    "header",
    [
        'Cert="abc',
        'Subject="a\\x";Cert=b',
        'Subject="a"b;Cert=c',
        "Cert=",
        "Cert",
        "=abc",
        "Unknown=1;Cert=x",
        "Cert=a;Cert=b",
        "Hash=a;;Cert=b",
        "Cert=a,",
        ",Cert=a",
        "",
        "   ",
        "Cert=a\nb",
        "Subject=\"\x00\";Cert=a",
        "Cert=a b",
    ],
)
def test_malformed_xfcc_is_rejected(header: str) -> None:
    with pytest.raises(ForwardedCertificateError):
        chain_from_xfcc([header])


@pytest.mark.parametrize(
    "cert_value",
    [
        quote("not a pem", safe=""),
        url_pem(CHAIN.leaf) + "%2",
        "%G1" + url_pem(CHAIN.leaf),
        url_pem(CHAIN.leaf).replace("%0A", "%0A%25", 1),
        url_pem(CHAIN.leaf)[:-40],
        quote(pem(CHAIN.leaf).replace("M", "*", 1), safe=""),
        quote(pem(CHAIN.leaf).replace("\n-----END", "=\n-----END"), safe=""),
        quote(pem(b"\x30\x03\x02\x01\x01"), safe=""),
        quote(pem(CHAIN.leaf) + "trailing", safe=""),
        quote("é" + pem(CHAIN.leaf), safe=""),
    ],
)
def test_bad_pem_in_cert_is_rejected(cert_value: str) -> None:
    with pytest.raises(ForwardedCertificateError):
        chain_from_xfcc([f"Cert={cert_value}"])


def test_cert_with_two_certificates_is_rejected() -> None:
    with pytest.raises(ForwardedCertificateError):
        chain_from_xfcc([f"Cert={url_pem(CHAIN.leaf, CHAIN.intermediate)}"])


def test_chain_longer_than_limit_is_rejected() -> None:
    header = f"Chain={url_pem(CHAIN.leaf, *[CHAIN.intermediate] * 8)}"

    with pytest.raises(ForwardedCertificateError, match="more than 8"):
        chain_from_xfcc([header], max_size=1 << 20)


def test_oversized_header_is_rejected_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(ForwardedCertificateError, match="exceeds"):
        chain_from_xfcc(['Subject="' + "a" * (1 << 20) + '"'])

    assert time.perf_counter() - started < 0.1


def test_ten_thousand_elements_are_rejected_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(ForwardedCertificateError, match="more than 16 elements"):
        chain_from_xfcc([",".join(["By=a"] * 10_000)])

    assert time.perf_counter() - started < 0.1


def test_unbalanced_quote_at_size_limit_is_rejected_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(ForwardedCertificateError, match="quote"):
        chain_from_xfcc(['Subject="' + "\\\"" * 32000])

    assert time.perf_counter() - started < 0.1


_VALUE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
)
_ELEMENT = st.lists(
    st.tuples(st.sampled_from(["By", "Hash", "Subject", "URI", "DNS"]), _VALUE_TEXT),
    min_size=1,
    max_size=5,
    unique_by=lambda pair: pair[0] if pair[0] not in ("URI", "DNS") else object(),
)


def _serialise(elements: list[list[tuple[str, str]]]) -> str:
    def value(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ",".join(";".join(f"{key}={value(text)}" for key, text in pairs) for pairs in elements)


@given(st.lists(_ELEMENT, min_size=0, max_size=10), st.booleans())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_serialised_elements_parse_back(
    elements: list[list[tuple[str, str]]], with_chain: bool
) -> None:
    last = [("Cert", url_pem(CHAIN.leaf))]
    if with_chain:
        last.append(("Chain", url_pem(CHAIN.leaf, CHAIN.intermediate)))
    header = _serialise([*elements, last])

    assert parse_xfcc([header]) == [tuple(pairs) for pairs in [*elements, last]]
    expected = [CHAIN.leaf, CHAIN.intermediate] if with_chain else [CHAIN.leaf]
    assert chain_from_xfcc([header]) == expected


@given(st.lists(st.text(max_size=200), min_size=1, max_size=4))
@settings(max_examples=500)
def test_arbitrary_text_only_raises_forwarded_certificate_error(values: list[str]) -> None:
    try:
        result = chain_from_xfcc(values)
    except ForwardedCertificateError:
        return
    assert result is not None and all(isinstance(der, bytes) for der in result)


_XFCC_ALPHABET = st.sampled_from(list('Cert=ChainBy;,"\\% -ABM0+/\n') + ["%0A", "%2B", "%3D"])


@given(st.lists(_XFCC_ALPHABET, max_size=120).map("".join))
@settings(max_examples=500)
def test_xfcc_like_text_only_raises_forwarded_certificate_error(header: str) -> None:
    try:
        chain_from_xfcc([header])
    except ForwardedCertificateError:
        pass


# RFC 9440 Client-Cert and Client-Cert-Chain


def test_client_cert_gives_leaf() -> None:
    assert chain_from_client_cert([sf_binary(CHAIN.leaf)], []) == [CHAIN.leaf]


def test_client_cert_chain_follows_leaf() -> None:
    chain = chain_from_client_cert([sf_binary(CHAIN.leaf)], [sf_binary(CHAIN.intermediate)])

    assert chain == [CHAIN.leaf, CHAIN.intermediate]


def test_client_cert_chain_lines_are_joined() -> None:
    chain_values = [
        sf_binary(CHAIN.intermediate),
        f"{sf_binary(CHAIN.other_leaf)} ,  {sf_binary(CHAIN.intermediate)}",
    ]

    chain = chain_from_client_cert([sf_binary(CHAIN.leaf)], chain_values)

    assert chain == [CHAIN.leaf, CHAIN.intermediate, CHAIN.other_leaf, CHAIN.intermediate]


def test_client_cert_parameters_are_ignored() -> None:
    value = f'  {sf_binary(CHAIN.leaf)};a=1;b="x,y";c;d=?0;e=tok/en;f=:AAAA:  '

    assert chain_from_client_cert([value], [f"{sf_binary(CHAIN.intermediate)};z"]) == [
        CHAIN.leaf,
        CHAIN.intermediate,
    ]


def test_absent_client_cert_gives_none() -> None:
    assert chain_from_client_cert([], []) is None


def test_client_cert_chain_alone_is_rejected() -> None:
    with pytest.raises(ForwardedCertificateError, match="without Client-Cert"):
        chain_from_client_cert([], [sf_binary(CHAIN.intermediate)])


def test_two_client_cert_lines_are_rejected() -> None:
    with pytest.raises(ForwardedCertificateError, match="more than one"):
        chain_from_client_cert([sf_binary(CHAIN.leaf), sf_binary(CHAIN.leaf)], [])


@pytest.mark.parametrize(
    ("cert_value", "chain_values"),
    [
        (base64.b64encode(CHAIN.leaf).decode(), []),
        (sf_binary(CHAIN.leaf)[:-1], []),
        (sf_binary(CHAIN.leaf).replace("A", "-", 1), []),
        (sf_binary(CHAIN.leaf)[:1] + " " + sf_binary(CHAIN.leaf)[1:], []),
        ("::", []),
        (":AAAA:", []),
        (sf_binary(CHAIN.leaf) + ";A=1", []),
        (f"{sf_binary(CHAIN.leaf)}, {sf_binary(CHAIN.leaf)}", []),
        (sf_binary(CHAIN.leaf), [f"{sf_binary(CHAIN.intermediate)},"]),
        (sf_binary(CHAIN.leaf), [f",{sf_binary(CHAIN.intermediate)}"]),
        (sf_binary(CHAIN.leaf), [sf_binary(CHAIN.intermediate) * 2]),
        (sf_binary(CHAIN.leaf), [f"{sf_binary(CHAIN.intermediate)} {sf_binary(CHAIN.leaf)}"]),
        (sf_binary(CHAIN.leaf), ['"not binary"']),
        (sf_binary(CHAIN.leaf), [":AAAA:"]),
        ("", []),
    ],
)
def test_malformed_client_cert_is_rejected(cert_value: str, chain_values: list[str]) -> None:
    with pytest.raises(ForwardedCertificateError):
        chain_from_client_cert([cert_value], chain_values)


def test_client_cert_chain_beyond_limit_is_rejected() -> None:
    chain_values = [", ".join([sf_binary(CHAIN.intermediate)] * 8)]

    with pytest.raises(ForwardedCertificateError, match="more than 7"):
        chain_from_client_cert([sf_binary(CHAIN.leaf)], chain_values, max_size=1 << 20)


def test_oversized_client_cert_is_rejected_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(ForwardedCertificateError, match="exceeds"):
        chain_from_client_cert([":" + "A" * (1 << 20) + ":"], [])

    assert time.perf_counter() - started < 0.1


@given(st.lists(st.text(max_size=200), max_size=2), st.lists(st.text(max_size=200), max_size=3))
@settings(max_examples=500)
def test_arbitrary_client_cert_text_only_raises_forwarded_certificate_error(
    cert_values: list[str], chain_values: list[str]
) -> None:
    try:
        chain_from_client_cert(cert_values, chain_values)
    except ForwardedCertificateError:
        pass


@given(st.lists(st.sampled_from(list(":;=,\"?*aA0+/ ") + [sf_binary(CHAIN.leaf)]), max_size=40))
@settings(max_examples=300)
def test_sf_like_text_only_raises_forwarded_certificate_error(parts: list[str]) -> None:
    try:
        chain_from_client_cert([sf_binary(CHAIN.leaf)], ["".join(parts)])
    except ForwardedCertificateError:
        pass


# trusted proxies


def test_trusted_proxies_parse_addresses_and_networks() -> None:
    proxies = parse_trusted_proxies(" 127.0.0.1, 10.0.0.0/8,::1 ")

    assert proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse_trusted_proxies("") == ()


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.example", "127.0.0.1,,::1", "300.1.1.1"])
def test_bad_trusted_proxies_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_trusted_proxies(value)


@pytest.mark.parametrize(
    ("client_host", "trusted"),
    [
        ("127.0.0.1", True),
        ("10.20.30.40", True),
        ("::ffff:10.1.2.3", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("11.0.0.1", False),
        ("::2", False),
        ("not-an-address", False),
        ("/run/proxy.sock", False),
        ("", False),
        (None, False),
    ],
)
def test_is_trusted_proxy(client_host: str | None, trusted: bool) -> None:
    proxies = parse_trusted_proxies("127.0.0.1,10.0.0.0/8,::1,fe80::/64")

    assert is_trusted_proxy(client_host, proxies) is trusted
