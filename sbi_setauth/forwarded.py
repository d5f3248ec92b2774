"""Client certificates forwarded by a trusted TLS-terminating proxy: Envoy's
`x-forwarded-client-cert` and the RFC 9440 `Client-Cert` / `Client-Cert-Chain` headers.

Parsing only: entries are checked to be X.509 certificates within size and count limits;
validating the chain against trust anchors is left to the caller.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote_to_bytes

from cryptography import x509

__all__ = [
    "ForwardedCertificateError",
    "chain_from_client_cert",
    "chain_from_xfcc",
    "is_trusted_proxy",
    "parse_trusted_proxies",
    "parse_xfcc",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
XfccElement = tuple[tuple[str, str], ...]


class ForwardedCertificateError(ValueError):
    """A forwarded client certificate header that is malformed or exceeds a limit."""


def parse_trusted_proxies(value: str) -> tuple[IpNetwork, ...]:
    """Parse comma separated addresses and networks (`127.0.0.1,10.0.0.0/8,::1`)."""
    if not value.strip():
        return ()

    networks = []
    for entry in value.split(","):
        entry = entry.strip()
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(networks)


def is_trusted_proxy(client_host: str | None, proxies: Iterable[IpNetwork]) -> bool:
    """Tell whether the peer address `client_host` lies in one of the `proxies` networks."""
    if not client_host:
        return False
    try:
        address = ipaddress.ip_address(client_host.strip("[]"))
    except ValueError:
        return False

    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.scope_id is not None:
            address = ipaddress.IPv6Address(client_host.strip("[]").split("%", 1)[0])
    return any(address in network for network in proxies)


_XFCC_KEYS = {
    "by": "By",
    "hash": "Hash",
    "cert": "Cert",
    "chain": "Chain",
    "subject": "Subject",
    "uri": "URI",
    "dns": "DNS",
}
_XFCC_REPEATABLE = {"URI", "DNS"}
_XFCC_KEY = re.compile(r"([A-Za-z]+)=")
_XFCC_TOKEN = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x7e\x80-\xff]+")
_XFCC_QUOTED = re.compile(r'"((?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\["\\])*)"')
_XFCC_ESCAPE = re.compile(r"\\(.)")
_OWS = re.compile(r"[ \t]*")


def _skip_ows(text: str, position: int = 0) -> int:
    """The position after any spaces and tabs from `position` on."""
    match = _OWS.match(text, position)
    return match.end() if match else position
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PEM_BLOCK = re.compile(
    r"\s*-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*)-----END CERTIFICATE-----\s*"
)
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _checked_size(values: Sequence[str], max_size: int) -> None:
    if sum(len(value) for value in values) + len(values) > max_size:
        raise ForwardedCertificateError(f"forwarded certificate header exceeds {max_size} bytes")


def parse_xfcc(
    values: Sequence[str], *, max_size: int = 65536, max_elements: int = 16
) -> list[XfccElement]:
    """Parse `x-forwarded-client-cert` header lines into elements of (key, value) pairs.

    Keys are returned in their canonical spelling (`By`, `Hash`, `Cert`, `Chain`, `Subject`,
    `URI`, `DNS`) and quoted values unescaped; values are not URL-decoded.
    """
    _checked_size(values, max_size)
    text = ",".join(values)
    elements: list[XfccElement] = []
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    position = _skip_ows(text)

    while True:
        key_match = _XFCC_KEY.match(text, position)
        if key_match is None:
            raise ForwardedCertificateError("x-forwarded-client-cert: expected key=value")
        key = _XFCC_KEYS.get(key_match.group(1).lower())
        if key is None:
            raise ForwardedCertificateError("x-forwarded-client-cert: unknown key")
        if key in seen and key not in _XFCC_REPEATABLE:
            raise ForwardedCertificateError(f"x-forwarded-client-cert: repeated {key}")
        seen.add(key)
        position = key_match.end()

        if text.startswith('"', position):
            quoted = _XFCC_QUOTED.match(text, position)
            if quoted is None:
                raise ForwardedCertificateError(
                    "x-forwarded-client-cert: unbalanced quote or bad escape"
                )
            value = _XFCC_ESCAPE.sub(r"\1", quoted.group(1))
            position = quoted.end()
        else:
            token = _XFCC_TOKEN.match(text, position)
            if token is None:
                raise ForwardedCertificateError("x-forwarded-client-cert: empty or bad value")
            value = token.group()
            position = token.end()
        pairs.append((key, value))

        position = _skip_ows(text, position)
        if position == len(text):
            elements.append(tuple(pairs))
            return elements
        separator = text[position]
        position = _skip_ows(text, position + 1)
        if separator == ",":
            elements.append(tuple(pairs))
            if len(elements) >= max_elements:
                raise ForwardedCertificateError(
                    f"x-forwarded-client-cert: more than {max_elements} elements"
                )
            pairs, seen = [], set()
        elif separator != ";":
            raise ForwardedCertificateError("x-forwarded-client-cert: unexpected character")


def _base64_der(data: str) -> bytes:
    if len(data) % 4 or _BASE64.fullmatch(data) is None:
        raise ForwardedCertificateError("certificate is not valid base64")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ForwardedCertificateError("certificate is not valid base64") from None


def _checked_certificate(der: bytes) -> bytes:
    try:
        x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise ForwardedCertificateError("entry is not an X.509 certificate") from None
    return der


def _pem_certificates(url_encoded: str, max_certs: int) -> list[bytes]:
    if _BAD_PERCENT.search(url_encoded):
        raise ForwardedCertificateError("x-forwarded-client-cert: bad URL encoding")
    try:
        pem = unquote_to_bytes(url_encoded).decode("ascii")
    except UnicodeDecodeError:
        raise ForwardedCertificateError("x-forwarded-client-cert: PEM is not ASCII") from None

    certificates = []
    position = 0
    while position < len(pem) or not certificates:
        block = _PEM_BLOCK.match(pem, position)
        if block is None:
            raise ForwardedCertificateError("x-forwarded-client-cert: bad PEM certificate")
        if len(certificates) == max_certs:
            raise ForwardedCertificateError(
                f"x-forwarded-client-cert: more than {max_certs} certificates"
            )
        der = _base64_der(_WHITESPACE.sub("", block.group(1)))
        certificates.append(_checked_certificate(der))
        position = block.end()
    return certificates


def chain_from_xfcc(
    values: Sequence[str],
    *,
    max_size: int = 65536,
    max_elements: int = 16,
    max_certs: int = 8,
) -> list[bytes] | None:
    """Return the DER chain, leaf first, that the nearest proxy put in `x-forwarded-client-cert`.

    The nearest proxy's element is the last one; its `Chain` is used when present (its first
    certificate must equal `Cert` when both are given), else `Cert`. Returns None when the header
    is absent; raises ForwardedCertificateError for anything malformed or oversized.
    """
    if not values:
        return None
    nearest = dict(
        (key, value)
        for key, value in parse_xfcc(values, max_size=max_size, max_elements=max_elements)[-1]
        if key in ("Cert", "Chain")
    )

    leaf = _pem_certificates(nearest["Cert"], 1) if "Cert" in nearest else None
    chain = _pem_certificates(nearest["Chain"], max_certs) if "Chain" in nearest else None
    if chain is not None:
        if leaf is not None and chain[0] != leaf[0]:
            raise ForwardedCertificateError(
                "x-forwarded-client-cert: Chain does not start with Cert"
            )
        return chain
    if leaf is not None:
        return leaf
    raise ForwardedCertificateError("x-forwarded-client-cert: no Cert or Chain from the proxy")


_SF_BARE_ITEM = (
    r"(?:-?[0-9]{1,15}(?:\.[0-9]{1,3})?"
    r'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'
    r"|[A-Za-z*][!#$%&'*+\-.^_`|~:/A-Za-z0-9]*"
    r"|:[A-Za-z0-9+/]*={0,2}:"
    r"|\?[01])"
)
_SF_BINARY_ITEM = re.compile(
    r":([A-Za-z0-9+/]*={0,2}):(?:;[ ]*[a-z*][a-z0-9_.*-]*(?:=" + _SF_BARE_ITEM + r")?)*"
)
_SF_LIST_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


def _sf_binary_items(text: str, max_items: int) -> list[bytes]:
    items: list[bytes] = []
    position = _skip_ows(text)
    while position < len(text):
        if len(items) == max_items:
            raise ForwardedCertificateError(f"Client-Cert-Chain: more than {max_items} entries")
        item = _SF_BINARY_ITEM.match(text, position)
        if item is None:
            raise ForwardedCertificateError("Client-Cert-Chain: entry is not a byte sequence")
        items.append(_base64_der(item.group(1)))
        position = _skip_ows(text, item.end())
        if position == len(text):
            break
        separator = _SF_LIST_SEPARATOR.match(text, position)
        if separator is None or separator.end() == len(text):
            raise ForwardedCertificateError("Client-Cert-Chain: malformed list")
        position = separator.end()
    return items


def chain_from_client_cert(
    cert_values: Sequence[str],
    chain_values: Sequence[str],
    *,
    max_size: int = 65536,
    max_certs: int = 8,
) -> list[bytes] | None:
    """Return the DER chain, leaf first, from RFC 9440 `Client-Cert` and `Client-Cert-Chain`.

    Returns None when `Client-Cert` is absent and no chain is given; raises
    ForwardedCertificateError for anything malformed, repeated or oversized.
    """
    _checked_size([*cert_values, *chain_values], max_size)
    if not cert_values:
        if chain_values:
            raise ForwardedCertificateError("Client-Cert-Chain without Client-Cert")
        return None
    if len(cert_values) != 1:
        raise ForwardedCertificateError("more than one Client-Cert header")

    leaf = _SF_BINARY_ITEM.fullmatch(cert_values[0].strip(" \t"))
    if leaf is None:
        raise ForwardedCertificateError("Client-Cert is not a byte sequence")
    chain = [_base64_der(leaf.group(1))]
    chain += _sf_binary_items(",".join(chain_values), max_certs - 1) if chain_values else []
    return [_checked_certificate(der) for der in chain]
