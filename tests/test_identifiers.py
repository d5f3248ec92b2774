"""Tests for the 3GPP identifier parsers: example tables and grammar-driven properties."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbi_setauth.identifiers import (
    IdentifierError,
    nf_set_id_from_fqdn,
    nf_type_of_set,
    normalize_nf_instance_id,
    normalize_nf_service_set_id,
    normalize_nf_set_id,
    parse_binding_nf_set,
    parse_plmn_id,
)

UDM_SET = "set1.udmset.5gc.mnc001.mcc001"
NF_INSTANCE_ID = "54804518-4191-46b3-955c-ac631f953ed8"

VALID_NF_SET_IDS = [
    ("set1.udmset.5gc.mnc001.mcc001", "set1.udmset.5gc.mnc001.mcc001"),
    ("SET1.UDMSET.5GC.MNC001.MCC001", "set1.udmset.5gc.mnc001.mcc001"),
    ("setXyz-2.SmfSet.5gc.mnc012.mcc345", "setxyz-2.smfset.5gc.mnc012.mcc345"),
    (
        "set2.pcfset.5gc.nid000007ED9D5.mnc012.mcc345",
        "set2.pcfset.5gc.nid000007ed9d5.mnc012.mcc345",
    ),
    ("set3f-region2a.amfset.5gc.mnc001.mcc001", "set3f-region2a.amfset.5gc.mnc001.mcc001"),
    ("set3F.region2A.amfset.5gc.mnc001.mcc001", "set3f-region2a.amfset.5gc.mnc001.mcc001"),
    (
        "set1.region7.amfset.5gc.nid000007ed9d5.mnc001.mcc001",
        "set1-region7.amfset.5gc.nid000007ed9d5.mnc001.mcc001",
    ),
    ("set1.5g_ddnmfset.5gc.mnc001.mcc001", "set1.5g_ddnmfset.5gc.mnc001.mcc001"),
    ("set1.nssaafset.5gc.mnc999.mcc999", "set1.nssaafset.5gc.mnc999.mcc999"),
    ("set" + "A" * 60 + ".udmset.5gc.mnc001.mcc001", f"set{'a' * 60}.udmset.5gc.mnc001.mcc001"),
    ("set-1.udmset.5gc.mnc001.mcc001", "set-1.udmset.5gc.mnc001.mcc001"),
]

INVALID_NF_SET_IDS = [
    "",
    "set1.udmset.5gc.mnc01.mcc001",
    "set1.udmset.5gc.mnc0001.mcc001",
    "set1.udmset.5gc.mnc001.mcc01",
    "set1.udmset.5gc.mnc001.mcc001.",
    ".set1.udmset.5gc.mnc001.mcc001",
    "set1.udmset..5gc.mnc001.mcc001",
    "set1.udmset.5gc.mnc001.mcc001.3gppnetwork.org",
    " set1.udmset.5gc.mnc001.mcc001",
    "set1.udmset.5gc.mnc001.mcc001\n",
    "set1 .udmset.5gc.mnc001.mcc001",
    "set.udmset.5gc.mnc001.mcc001",
    "set1-.udmset.5gc.mnc001.mcc001",
    "set1_a.udmset.5gc.mnc001.mcc001",
    "set1.set.5gc.mnc001.mcc001",
    "set1.udm.5gc.mnc001.mcc001",
    "set1.udmset.mnc001.mcc001",
    "set1.udmset.5gc.nid000007ed9d.mnc001.mcc001",
    "set1.udmset.5gc.nid000007ed9g5.mnc001.mcc001",
    "set1.udmset.5gc.mcc001.mnc001",
    "set1.udm-set.5gc.mnc001.mcc001",
    "udmset.5gc.mnc001.mcc001",
    "set1.region.amfset.5gc.mnc001.mcc001",
    "set1.region2.smfset.5gc.mnc001.mcc001",
    "set1.udm\u0430set.5gc.mnc001.mcc001",
    "set1.udmset.5gc.mnc\uff10\uff10\uff11.mcc001",
    "set1.udmset.5gc.mnc001.mcc\u0660\u0660\u0661",
    "set1.udmset.5gc.\u212anc001.mcc001",
    "SET1.\u0130WFSET.5GC.MNC001.MCC001",
    "set\u01311.udmset.5gc.mnc001.mcc001",
    "set" + "a" * 61 + ".udmset.5gc.mnc001.mcc001",
    "set" + "a" * 300 + ".udmset.5gc.mnc001.mcc001",
]


@pytest.mark.parametrize(("value", "expected"), VALID_NF_SET_IDS)
def test_valid_nf_set_id_is_lower_cased_and_canonical(value: str, expected: str) -> None:
    assert normalize_nf_set_id(value) == expected


@pytest.mark.parametrize("value", INVALID_NF_SET_IDS)
def test_malformed_nf_set_id_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError):
        normalize_nf_set_id(value)


def test_kelvin_sign_that_lowers_to_ascii_k_is_rejected() -> None:
    lookalike = "set1.\u212aset.5gc.mnc001.mcc001"
    assert lookalike.lower() == "set1.kset.5gc.mnc001.mcc001"
    normalize_nf_set_id("set1.kset.5gc.mnc001.mcc001")
    with pytest.raises(IdentifierError, match="non-ASCII"):
        normalize_nf_set_id(lookalike)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("set1.udmset.5gc.mnc01.mcc001", "MNC"),
        ("set1.udmset.5gc.mnc001.mcc1", "MCC"),
        ("set1.udmset.5gc.nid12.mnc001.mcc001", "NID"),
        ("set1.udmset.5gc.mnc001.mcc001.", "dot"),
        ("set1..udmset.5gc.mnc001.mcc001", "empty label"),
        ("set1.udmset.5gc.mnc001.mcc001 ", "whitespace"),
        ("x" * 300, "255"),
    ],
)
def test_rejection_message_names_what_was_wrong(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=reason):
        normalize_nf_set_id(value)


def test_rejection_message_does_not_echo_long_input() -> None:
    value = "set1.udmset.5gc." + "m" * 200 + ".mcc001"
    with pytest.raises(IdentifierError) as raised:
        normalize_nf_set_id(value)
    assert "m" * 65 not in str(raised.value)
    assert len(str(raised.value)) < 160


def test_non_text_is_rejected_as_identifier_error() -> None:
    with pytest.raises(IdentifierError):
        normalize_nf_set_id(b"set1.udmset.5gc.mnc001.mcc001")  # type: ignore[arg-type]
    with pytest.raises(IdentifierError):
        normalize_nf_instance_id(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nf_set_id", "nf_type"),
    [
        ("set1.udmset.5gc.mnc001.mcc001", "UDM"),
        ("set3f-region2a.amfset.5gc.mnc001.mcc001", "AMF"),
        ("SET3F.REGION2A.AMFSET.5GC.MNC001.MCC001", "AMF"),
        ("set1.5g_ddnmfset.5gc.nid000007ed9d5.mnc001.mcc001", "5G_DDNMF"),
        ("set1.mb_smfset.5gc.mnc001.mcc001", "MB_SMF"),
    ],
)
def test_nf_type_of_set_is_upper_case_nf_type(nf_set_id: str, nf_type: str) -> None:
    assert nf_type_of_set(nf_set_id) == nf_type


def test_nf_type_of_malformed_set_is_rejected() -> None:
    with pytest.raises(IdentifierError):
        nf_type_of_set("set1.udmset.5gc.mnc01.mcc001")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NF_INSTANCE_ID, NF_INSTANCE_ID),
        (NF_INSTANCE_ID.upper(), NF_INSTANCE_ID),
        ("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"),
    ],
)
def test_valid_nf_instance_id_is_lower_cased(value: str, expected: str) -> None:
    assert normalize_nf_instance_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "{" + NF_INSTANCE_ID + "}",
        "urn:uuid:" + NF_INSTANCE_ID,
        NF_INSTANCE_ID.replace("-", ""),
        NF_INSTANCE_ID + "\n",
        " " + NF_INSTANCE_ID,
        NF_INSTANCE_ID[:-1],
        NF_INSTANCE_ID + "0",
        NF_INSTANCE_ID.replace("a", "g"),
        NF_INSTANCE_ID.replace("5", "\uff15"),
        NF_INSTANCE_ID.replace("4", "\u0664"),
        "54804518-4191-46b3-955cac63-1f953ed8",
    ],
)
def test_malformed_nf_instance_id_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError):
        normalize_nf_instance_id(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345",
            f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345",
        ),
        (
            f"SET2.SNNPCF-SMPOLICYCONTROL.NFI{NF_INSTANCE_ID.upper()}.5GC.MNC012.MCC345",
            f"set2.snnpcf-smpolicycontrol.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345",
        ),
        (
            f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.nid000007ed9d5.mnc012.mcc345",
            f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.nid000007ed9d5.mnc012.mcc345",
        ),
    ],
)
def test_valid_nf_service_set_id_is_lower_cased(value: str, expected: str) -> None:
    assert normalize_nf_service_set_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.mnc12.mcc345",
        f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345.",
        f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID[:-1]}.5gc.mnc012.mcc345",
        f"setxyz.sn.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345",
        f"setxyz.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345",
        "setxyz.snnsmf-pdusession.5gc.mnc012.mcc345",
        f"setxyz.snnsmf-pdusession.nfi{NF_INSTANCE_ID}.5gc.nid7ed9d5.mnc012.mcc345",
        "set1.udmset.5gc.mnc001.mcc001",
        f"setxyz.snnsmf\u2010pdusession.nfi{NF_INSTANCE_ID}.5gc.mnc012.mcc345",
    ],
)
def test_malformed_nf_service_set_id_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError):
        normalize_nf_service_set_id(value)


@pytest.mark.parametrize(
    ("dns_name", "expected"),
    [
        ("set1.udmset.5gc.mnc001.mcc001.3gppnetwork.org", UDM_SET),
        ("SET1.UDMSET.5GC.MNC001.MCC001.3GPPNETWORK.ORG", UDM_SET),
        (
            "set3f.region2a.amfset.5gc.mnc001.mcc001.3gppnetwork.org",
            "set3f-region2a.amfset.5gc.mnc001.mcc001",
        ),
        (
            "set2.pcfset.5gc.nid000007ed9d5.mnc012.mcc345.3gppnetwork.org",
            "set2.pcfset.5gc.nid000007ed9d5.mnc012.mcc345",
        ),
        ("udm1.5gc.mnc001.mcc001.3gppnetwork.org", None),
        ("nrf.5gc.mnc001.mcc001.3gppnetwork.org", None),
        (f"set1.snnudm-sdm.nfi{NF_INSTANCE_ID}.5gc.mnc001.mcc001.3gppnetwork.org", None),
        ("pt1.set3f.region2a.amfi.5gc.mnc001.mcc001.3gppnetwork.org", None),
        ("set1.udmset.5gc.mnc001.mcc001.example.com", None),
        ("set1.udmset.5gc.mnc001.mcc001", None),
        ("udm.example.com", None),
        ("", None),
    ],
)
def test_nf_set_fqdn_yields_its_nf_set_id(dns_name: str, expected: str | None) -> None:
    assert nf_set_id_from_fqdn(dns_name) == expected


@pytest.mark.parametrize(
    "dns_name",
    [
        "set1.udmset.5gc.mnc01.mcc001.3gppnetwork.org",
        "set1.udmset.5gc.mnc001.mcc001.3gppnetwork.org.",
        "udmset.5gc.mnc001.mcc001.3gppnetwork.org",
        "*.udmset.5gc.mnc001.mcc001.3gppnetwork.org",
        "set1.udm\u0430set.5gc.mnc001.mcc001.3gppnetwork.org",
        "set1.udmset.5gc.mnc001.mcc001.3gppnetwor\u212a.org",
        "x.set1.udmset.5gc.mnc001.mcc001.3gppnetwork.org",
    ],
)
def test_malformed_nf_set_fqdn_is_rejected(dns_name: str) -> None:
    with pytest.raises(IdentifierError):
        nf_set_id_from_fqdn(dns_name)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([f"bl=nf-set; nfset={UDM_SET}"], UDM_SET),
        ([f"bl=nf-set;nfset={UDM_SET.upper()}"], UDM_SET),
        ([f"BL=NF-SET; NFSET={UDM_SET}"], UDM_SET),
        (
            ["bl=nf-set; nfset=set3f.region2a.amfset.5gc.mnc001.mcc001"],
            "set3f-region2a.amfset.5gc.mnc001.mcc001",
        ),
        (
            [f"bl=nf-instance; nfinst={NF_INSTANCE_ID}; nfset={UDM_SET}; servname=nudm-sdm"],
            UDM_SET,
        ),
        (
            [
                f"bl=nf-set; nfset={UDM_SET}; recoverytime=\"Tue, 04 Feb 2020 08:49:44 GMT\"; "
                'callback-uri-prefix="/a,b;c/nfset=set9.x"',
            ],
            UDM_SET,
        ),
        ([f"bl=nf-set; nfset={UDM_SET}", f"bl=nf-set; nfset={UDM_SET.upper()}"], UDM_SET),
        ([f" , bl=nf-set; nfset={UDM_SET} ,, bl=nf-instance; nfinst={NF_INSTANCE_ID} , "],
         UDM_SET),
        ([f"bl=nf-set; nfset={UDM_SET}; nr=https://nf.example.com:443/notify"], UDM_SET),
        ([f"bl=nf-set; nfset={UDM_SET}; scope=subscription; group=true"], UDM_SET),
        ([f"bl=nf-instance; nfinst={NF_INSTANCE_ID}"], None),
        (["", "  ", ","], None),
        ([], None),
        (f"bl=nf-set; nfset={UDM_SET}", UDM_SET),
    ],
)
def test_binding_header_yields_shared_nfset(values: list[str], expected: str | None) -> None:
    assert parse_binding_nf_set(values) == expected


@pytest.mark.parametrize(
    "values",
    [
        [f"nfset={UDM_SET}"],
        [f"bl=nf-set, nfset={UDM_SET}"],
        ["bl=nf-set"],
        [f"bl=other; nfset={UDM_SET}"],
        [f"bl=nf-set; nfset={UDM_SET}; nfset={UDM_SET}"],
        [f"bl=nf-set; nfset={UDM_SET}", "bl=nf-set; nfset=set2.udmset.5gc.mnc001.mcc001"],
        [f"bl=nf-set; nfset={UDM_SET}, bl=nf-set; nfset=set1.udmset.5gc.mnc002.mcc001"],
        ["bl=nf-set; nfset=set1.udmset.5gc.mnc01.mcc001"],
        [f'bl=nf-set; nfset="{UDM_SET}"'],
        [f"bl=nf-set; nfset={UDM_SET}; recoverytime=\"unterminated"],
        [f"bl=nf-set; nfset={UDM_SET} junk"],
        [f"bl=nf-set; nfset={UDM_SET};"],
        ["bl=nf-set; nfset="],
        [f"bl=nf-set; =x; nfset={UDM_SET}"],
        [f"bl=nf-set; nfset={UDM_SET}\u00a0"],
        ["bl=nf-set; nfset=set1.udm\u0430set.5gc.mnc001.mcc001"],
        [f"bl=nf-set; nfset={UDM_SET}", b"bl=nf-set"],
    ],
)
def test_malformed_binding_header_is_rejected(values: list[str]) -> None:
    with pytest.raises(IdentifierError):
        parse_binding_nf_set(values)


def test_binding_header_with_too_many_elements_is_rejected() -> None:
    element = f"bl=nf-set; nfset={UDM_SET}"
    assert parse_binding_nf_set([", ".join([element] * 16)]) == UDM_SET
    assert parse_binding_nf_set([element] * 4, max_elements=4) == UDM_SET
    with pytest.raises(IdentifierError, match="more than 16"):
        parse_binding_nf_set([", ".join([element] * 17)])
    with pytest.raises(IdentifierError, match="more than 4"):
        parse_binding_nf_set([element] * 5, max_elements=4)


@pytest.mark.parametrize(
    "value",
    [
        "bl=nf-set" + "; nfinst=" + "a" * 4000,
        "bl=nf-set;" + " " * 4000 + "x",
        'bl=nf-set; recoverytime="' + "\\" * 4000,
        "bl=nf-set; nfset=" + "set1." * 800,
        ", " * 2000,
        "bl=nf-set; a=b" * 300,
    ],
)
def test_adversarial_binding_header_is_answered_quickly(value: str) -> None:
    started = time.perf_counter()
    try:
        parse_binding_nf_set([value])
    except IdentifierError:
        pass
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    ("value", "expected"),
    [("001-01", ("001", "01")), ("001-001", ("001", "001")), ("310-260", ("310", "260"))],
)
def test_valid_plmn_id_is_split(value: str, expected: tuple[str, str]) -> None:
    assert parse_plmn_id(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "001", "00101", "01-01", "001-1", "001-0001", "001_01", " 001-01", "001-01\n",
     "\uff10\uff10\uff11-01", "001-\u0660\u0661", "abc-de"],
)
def test_malformed_plmn_id_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError):
        parse_plmn_id(value)


def _mixed_case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(text, upper))
    )


def _concat(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


set_ids = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
nf_types = st.one_of(
    st.sampled_from(["AMF", "SMF", "UDM", "PCF", "NSSAAF", "5G_DDNMF", "MB_SMF", "NRF"]),
    st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
)
three_digits = st.from_regex(r"[0-9]{3}", fullmatch=True)
nid_labels = st.one_of(
    st.just(""),
    _concat(_mixed_case("nid"), st.from_regex(r"[0-9A-Fa-f]{11}", fullmatch=True), st.just(".")),
)
home_networks = _concat(
    _mixed_case("5gc."), nid_labels, _mixed_case("mnc"), three_digits, _mixed_case(".mcc"),
    three_digits,
)
nf_set_ids = _concat(
    _mixed_case("set"), set_ids, st.just("."), nf_types, _mixed_case("set."), home_networks
)
legacy_amf_set_ids = _concat(
    _mixed_case("set"), set_ids, _mixed_case(".region"), set_ids, _mixed_case(".amfset."),
    home_networks,
)
instance_ids = st.uuids().map(str).flatmap(lambda u: st.sampled_from([u, u.upper()]))
service_names = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
nf_service_set_ids = _concat(
    _mixed_case("set"), set_ids, _mixed_case(".sn"), service_names, _mixed_case(".nfi"),
    instance_ids, st.just("."), home_networks,
)


@settings(max_examples=200, deadline=None)
@given(nf_set_ids)
def test_generated_nf_set_id_round_trips_lower_cased(value: str) -> None:
    normalized = normalize_nf_set_id(value)
    assert normalized == value.lower()
    assert normalize_nf_set_id(normalized) == normalized
    assert nf_set_id_from_fqdn(value + ".3GPPnetwork.org") == normalized


@settings(max_examples=100, deadline=None)
@given(legacy_amf_set_ids)
def test_generated_legacy_amf_set_id_is_rewritten(value: str) -> None:
    set_label, region_label, rest = value.lower().split(".", 2)
    expected = f"{set_label}-{region_label}.{rest}"
    assert normalize_nf_set_id(value) == expected
    assert normalize_nf_set_id(expected) == expected
    assert nf_type_of_set(value) == "AMF"


@settings(max_examples=100, deadline=None)
@given(nf_service_set_ids)
def test_generated_nf_service_set_id_round_trips_lower_cased(value: str) -> None:
    normalized = normalize_nf_service_set_id(value)
    assert normalized == value.lower()
    assert normalize_nf_service_set_id(normalized) == normalized


@settings(max_examples=100, deadline=None)
@given(instance_ids)
def test_generated_nf_instance_id_round_trips_lower_cased(value: str) -> None:
    assert normalize_nf_instance_id(value) == value.lower()


identifier_parsers = [
    normalize_nf_set_id,
    normalize_nf_service_set_id,
    normalize_nf_instance_id,
    nf_set_id_from_fqdn,
    nf_type_of_set,
    parse_plmn_id,
]
near_valid_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="setamfudm.5gcmncid0123456789-_ \u212a\u0430\u0131", max_size=80),
    nf_set_ids.flatmap(lambda v: st.integers(0, len(v)).map(lambda i: v[:i] + v[i + 1 :])),
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(identifier_parsers), near_valid_text)
def test_arbitrary_text_raises_only_identifier_error(parser, value: str) -> None:
    try:
        result = parser(value)
    except IdentifierError:
        return
    if parser is normalize_nf_set_id:
        assert value.isascii() and normalize_nf_set_id(result) == result


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(identifier_parsers[:3]), near_valid_text)
def test_normalization_is_idempotent(normalize, value: str) -> None:
    try:
        normalized = normalize(value)
    except IdentifierError:
        return
    assert normalize(normalized) == normalized


binding_text = st.one_of(
    st.text(max_size=120),
    st.text(alphabet='bl=nf-set;,"\\ \tnfsetinst.5gcmnc01x', max_size=120),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(binding_text, max_size=4))
def test_arbitrary_binding_header_raises_only_identifier_error(values: list[str]) -> None:
    try:
        result = parse_binding_nf_set(values)
    except IdentifierError:
        return
    assert result is None or normalize_nf_set_id(result) == result


ows = st.sampled_from(["", " ", "\t", "  "])
token_values = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)
quoted_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    max_size=20,
).map(lambda v: f'"{v}"')
other_parameters = st.lists(
    st.tuples(
        st.sampled_from(["nfinst", "servname", "scope", "group", "callback-uri-prefix",
                         "recoverytime", "backupnf"]),
        st.one_of(token_values, quoted_values),
    ),
    max_size=3,
)


@st.composite
def binding_headers(draw: st.DrawFn) -> tuple[list[str], str | None]:
    nf_set_id = draw(nf_set_ids)
    elements = []
    carried = False
    for _ in range(draw(st.integers(1, 6))):
        parameters = draw(other_parameters)
        if draw(st.booleans()):
            position = draw(st.integers(0, len(parameters)))
            parameters.insert(position, ("nfset", draw(_mixed_case(nf_set_id.lower()))))
            carried = True
        if not parameters:
            parameters = [("nfinst", str(draw(st.uuids())))]
        level = draw(st.sampled_from(["nf-set", "nf-instance", "NF-Set", "nfservice-set"]))
        element = f"bl={level}" + "".join(
            f"{draw(ows)};{draw(ows)}{name}={value}" for name, value in parameters
        )
        elements.append(element + draw(ows))

    lines: list[str] = []
    while elements:
        take = draw(st.integers(1, len(elements)))
        separator = draw(ows) + "," + draw(ows) + draw(st.sampled_from(["", ", "]))
        lines.append(draw(ows) + separator.join(elements[:take]))
        elements = elements[take:]
    return lines, (normalize_nf_set_id(nf_set_id) if carried else None)


@settings(max_examples=200, deadline=None)
@given(binding_headers())
def test_generated_binding_header_yields_its_nfset(header: tuple[list[str], str | None]) -> None:
    lines, expected = header
    assert parse_binding_nf_set(lines) == expected
