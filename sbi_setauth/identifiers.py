"""Parse and normalise 3GPP identifiers: NF Set IDs (TS 23.003 28.12), NF Service Set IDs,
NF instance IDs, PLMN IDs and the `nfset` parameter of the `3gpp-Sbi-Binding` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

__all__ = [
    "IdentifierError",
    "MAX_IDENTIFIER_LENGTH",
    "BINDING_LEVELS",
    "normalize_nf_set_id",
    "nf_type_of_set",
    "normalize_nf_instance_id",
    "normalize_nf_service_set_id",
    "nf_set_id_from_fqdn",
    "parse_binding_nf_set",
    "parse_plmn_id",
]

MAX_IDENTIFIER_LENGTH = 255
BINDING_LEVELS = frozenset({"nf-instance", "nf-set", "nfservice-instance", "nfservice-set"})

_EXCERPT_LENGTH = 48
_NF_SET_FQDN_SUFFIX = ".3gppnetwork.org"
_SET_ID = r"[a-z0-9-]{0,59}[a-z0-9]"
_HOME_NETWORK = r"5gc\.(?:nid([0-9a-f]{11})\.)?mnc([0-9]{3})\.mcc([0-9]{3})"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

_NF_SET_ID = re.compile(rf"set{_SET_ID}\.([a-z0-9_]{{1,60}})set\.{_HOME_NETWORK}", re.ASCII)
_LEGACY_AMF_SET_ID = re.compile(rf"set({_SET_ID})\.region({_SET_ID})\.(amfset\.5gc\..*)", re.ASCII)
_NF_SERVICE_SET_ID = re.compile(
    rf"set{_SET_ID}\.sn[a-z0-9](?:[a-z0-9-]{{0,59}}[a-z0-9])?\.nfi{_UUID}\.{_HOME_NETWORK}",
    re.ASCII,
)
_NF_INSTANCE_ID = re.compile(_UUID, re.ASCII | re.IGNORECASE)
_PLMN_ID = re.compile(r"([0-9]{3})-([0-9]{2,3})", re.ASCII)
_LABEL_CHARACTERS = re.compile(r"[a-z0-9_-]*", re.ASCII)
_MNC_LABEL = re.compile(r"mnc[0-9]{3}", re.ASCII)
_MCC_LABEL = re.compile(r"mcc[0-9]{3}", re.ASCII)
_NID_LABEL = re.compile(r"nid[0-9a-f]{11}", re.ASCII)

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_BINDING_LEVEL = re.compile(rf"bl[ \t]*=[ \t]*({_TOKEN})", re.ASCII | re.IGNORECASE)
# Limitation: an unquoted URI value (`nr=`) that itself contains ";" or "," is ambiguous in
# this header and is read as ending there, which usually makes the element malformed.
_BINDING_PARAMETER = re.compile(
    rf"[ \t]*;[ \t]*({_TOKEN})[ \t]*=[ \t]*"
    r'("(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
    r"|[\x21\x23-\x2b\x2d-\x3a\x3c-\x7e]+)",
    re.ASCII,
)


class IdentifierError(ValueError):
    """An identifier that does not follow its 3GPP format."""


def _excerpt(value: str) -> str:
    if len(value) > _EXCERPT_LENGTH:
        return ascii(value[:_EXCERPT_LENGTH]) + "..."
    return ascii(value)


def _require_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(f"{what} must be text, not {type(value).__name__}")
    return value


def _set_id_problem(value: str) -> str:
    if not value:
        return "is empty"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "contains whitespace or control characters"
    if value.endswith("."):
        return "ends with a dot"
    labels = value.split(".")
    if "" in labels:
        return "has an empty label"
    if any(len(label) > 63 for label in labels):
        return "has a label longer than 63 characters"
    if any(_LABEL_CHARACTERS.fullmatch(label) is None for label in labels):
        return "contains characters other than letters, digits, '-' and '_'"
    for label in labels:
        if label.startswith("mnc") and _MNC_LABEL.fullmatch(label) is None:
            return "must have an MNC of exactly three digits"
        if label.startswith("mcc") and _MCC_LABEL.fullmatch(label) is None:
            return "must have an MCC of exactly three digits"
        if label.startswith("nid") and _NID_LABEL.fullmatch(label) is None:
            return "must have a NID of exactly eleven hexadecimal digits"
    return "does not follow the TS 23.003 format"


def _invalid(what: str, value: str, problem: str) -> IdentifierError:
    return IdentifierError(f"{what} {_excerpt(value)} {problem}")


def _lower_ascii(value: str, what: str) -> str:
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise IdentifierError(f"{what} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    if not value.isascii():
        raise _invalid(what, value, "contains non-ASCII characters")
    return value.lower()


def _match_nf_set_id(value: str) -> re.Match[str]:
    lowered = _lower_ascii(_require_text(value, "NF Set ID"), "NF Set ID")
    match = _NF_SET_ID.fullmatch(lowered)
    if match is not None:
        return match

    legacy = _LEGACY_AMF_SET_ID.fullmatch(lowered)
    if legacy is not None:
        match = _NF_SET_ID.fullmatch(f"set{legacy[1]}-region{legacy[2]}.{legacy[3]}")
        if match is not None:
            return match
    raise _invalid("NF Set ID", value, _set_id_problem(lowered))


def normalize_nf_set_id(value: str) -> str:
    """Return the canonical (lower-case) form of an NF Set ID, or raise `IdentifierError`.

    Accepts `set<SetID>.<nftype>set.5gc[.nid<NID>].mnc<MNC>.mcc<MCC>` in any case, and
    rewrites the legacy AMF form `set<X>.region<Y>.amfset...` as `set<X>-region<Y>.amfset...`.
    """
    return _match_nf_set_id(value).string


def nf_type_of_set(nf_set_id: str) -> str:
    """Return the NF type named by an NF Set ID's `<nftype>set` label, upper case ("AMF")."""
    return _match_nf_set_id(nf_set_id)[1].upper()


def normalize_nf_instance_id(value: str) -> str:
    """Return the lower-case form of an NF instance ID in RFC 4122 text form (8-4-4-4-12)."""
    if _NF_INSTANCE_ID.fullmatch(_require_text(value, "NF instance ID")) is None:
        raise _invalid("NF instance ID", value, "is not a UUID in 8-4-4-4-12 hexadecimal form")
    return value.lower()


def normalize_nf_service_set_id(value: str) -> str:
    """Return the canonical (lower-case) form of an NF Service Set ID, or raise `IdentifierError`.

    The format is `set<SetID>.sn<ServiceName>.nfi<NF instance ID>.5gc[.nid<NID>]` followed by
    `.mnc<MNC>.mcc<MCC>`.
    """
    lowered = _lower_ascii(_require_text(value, "NF Service Set ID"), "NF Service Set ID")
    if _NF_SERVICE_SET_ID.fullmatch(lowered) is None:
        raise _invalid("NF Service Set ID", value, _set_id_problem(lowered))
    return lowered


def nf_set_id_from_fqdn(dns_name: str) -> str | None:
    """Return the NF Set ID named by an NF Set FQDN (`<NF Set ID>.3gppnetwork.org`).

    Returns None when `dns_name` is not an NF Set FQDN at all: it is outside `3gppnetwork.org`
    or has no `<nftype>set.5gc` label pair. Raises `IdentifierError` when it has that shape but
    is malformed (non-ASCII, a trailing dot, or an invalid NF Set ID before the domain).
    """
    lowered = _require_text(dns_name, "DNS name").lower()
    in_domain = lowered.endswith((_NF_SET_FQDN_SUFFIX, _NF_SET_FQDN_SUFFIX + "."))
    if not in_domain or "set.5gc." not in lowered:
        return None

    if not dns_name.isascii():
        raise _invalid("NF Set FQDN", dns_name, "contains non-ASCII characters")
    if lowered.endswith("."):
        raise _invalid("NF Set FQDN", dns_name, "ends with a dot")
    return normalize_nf_set_id(lowered[: -len(_NF_SET_FQDN_SUFFIX)])


def _skip_ows(line: str, position: int) -> int:
    while position < len(line) and line[position] in " \t":
        position += 1
    return position


def _binding_elements(line: str) -> Iterator[list[tuple[str, str]]]:
    position = _skip_ows(line, 0)
    while position < len(line):
        if line[position] == ",":
            position = _skip_ows(line, position + 1)
            continue

        level = _BINDING_LEVEL.match(line, position)
        if level is None or level[1].lower() not in BINDING_LEVELS:
            raise IdentifierError("3gpp-Sbi-Binding element does not start with a valid bl=")
        position = level.end()
        parameters: list[tuple[str, str]] = []
        while (parameter := _BINDING_PARAMETER.match(line, position)) is not None:
            parameters.append((parameter[1].lower(), parameter[2]))
            position = parameter.end()
        if not parameters:
            raise IdentifierError("3gpp-Sbi-Binding element has no parameter after bl=")
        position = _skip_ows(line, position)
        if position < len(line) and line[position] != ",":
            raise IdentifierError(
                f"3gpp-Sbi-Binding element is malformed at character {position + 1}"
            )
        yield parameters


def parse_binding_nf_set(values: Sequence[str], *, max_elements: int = 16) -> str | None:
    """Return the normalised `nfset` shared by every `3gpp-Sbi-Binding` element carrying one.

    `values` holds every line of the header; their comma-separated elements are combined and
    empty elements ignored. Returns None when no element carries `nfset`. Raises
    `IdentifierError` for a malformed element, more than `max_elements` elements, an element
    with two `nfset` parameters, an invalid NF Set ID, or `nfset` values that differ.
    """
    if isinstance(values, str):
        values = (values,)
    nf_set_id: str | None = None
    count = 0
    for line in values:
        for parameters in _binding_elements(_require_text(line, "3gpp-Sbi-Binding")):
            count += 1
            if count > max_elements:
                raise IdentifierError(f"3gpp-Sbi-Binding has more than {max_elements} elements")
            nfsets = [value for name, value in parameters if name == "nfset"]
            if len(nfsets) > 1:
                raise IdentifierError("3gpp-Sbi-Binding element carries nfset more than once")
            if not nfsets:
                continue

            element_nf_set_id = normalize_nf_set_id(nfsets[0])
            if nf_set_id is not None and element_nf_set_id != nf_set_id:
                raise IdentifierError("3gpp-Sbi-Binding elements carry different nfset values")
            nf_set_id = element_nf_set_id
    return nf_set_id


def parse_plmn_id(value: str) -> tuple[str, str]:
    """Split a PLMN ID `mcc-mnc` (three-digit MCC, two- or three-digit MNC) into (mcc, mnc)."""
    match = _PLMN_ID.fullmatch(_require_text(value, "PLMN ID"))
    if match is None:
        raise _invalid("PLMN ID", value, "is not <3-digit MCC>-<2- or 3-digit MNC>")
    return match[1], match[2]
