"""A Client Credentials Assertion is accepted only when every TS 33.501 13.3.8 check passes;
each attack an NF or a middlebox could mount is refused as CCA_VERIFICATION_FAILURE.
"""

from __future__ import annotations

import base64
import datetime
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sbi_setauth.cca import CcaVerifier, VerifiedCca
from sbi_setauth.certificates import CertificateVerifier, TrustStore
from sbi_setauth.rejections import CcaVerificationFailure
from sbi_setauth.testing import CA, NfCertificate, sign_jws

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
OTHER_INSTANCE = "0c7b6f2e-5a1d-4c3e-9f2a-1b2c3d4e5f60"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def amf(ca: CA) -> NfCertificate:
    return ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)


@pytest.fixture
def verifier(ca: CA) -> CcaVerifier:
    return CcaVerifier(CertificateVerifier(TrustStore([ca.certificate])), producer_nf_type="UDM")


def _now() -> int:
    return int(time.time())


def _utc(**delta: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(**delta)


def _rejected(verifier: CcaVerifier, cca: str, reason: str) -> CcaVerificationFailure:
    with pytest.raises(CcaVerificationFailure, match=reason) as caught:
        verifier.verify(cca)
    assert caught.value.cause == "CCA_VERIFICATION_FAILURE"
    return caught.value


def _self_signed_nf_certificate() -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FI"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Operator"),
        ]
    )
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(f"urn:uuid:{OTHER_INSTANCE}"), x509.DNSName("amf.test")]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_utc(hours=-1))
        .not_valid_after(_utc(days=1))
        .add_extension(san, True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER), key


def test_valid_cca_is_accepted(verifier: CcaVerifier, amf: NfCertificate) -> None:
    verified = verifier.verify(amf.cca(aud=["NRF", "UDM"]))

    assert isinstance(verified, VerifiedCca)
    assert verified.nf_instance_id == amf.nf_instance_id
    assert verified.nf_set_id == AMF_SET
    assert verified.signer.nf_instance_id == amf.nf_instance_id
    assert verified.signer.nf_set_id == AMF_SET
    assert verified.signer.nf_types == ("AMF",)
    assert verified.claims["aud"] == ["NRF", "UDM"]


def test_cca_without_set_claim_has_no_nf_set_id(verifier: CcaVerifier, amf: NfCertificate) -> None:
    assert verifier.verify(amf.cca(nf_set_id=None)).nf_set_id is None


def test_set_claim_is_normalised(verifier: CcaVerifier, amf: NfCertificate) -> None:
    assert verifier.verify(amf.cca(nf_set_id=AMF_SET.upper())).nf_set_id == AMF_SET


def test_custom_set_claim_name_is_read(ca: CA, amf: NfCertificate) -> None:
    verifier = CcaVerifier(
        CertificateVerifier(TrustStore([ca.certificate])),
        producer_nf_type="udm",
        set_claim="nfSetId",
    )
    assert verifier.verify(amf.cca(set_claim="nfSetId")).nf_set_id == AMF_SET
    assert verifier.verify(amf.cca()).nf_set_id is None


@pytest.mark.parametrize("key_type", ["ec384", "rsa", "ed25519"])
def test_cca_signed_with_other_key_types_through_intermediate_is_accepted(
    key_type: str,
) -> None:
    root = CA()
    nf = root.issue_intermediate().issue_nf_certificate(key_type=key_type)
    verifier = CcaVerifier(
        CertificateVerifier(TrustStore([root.certificate])), producer_nf_type="UDM"
    )
    assert verifier.verify(nf.cca()).nf_instance_id == nf.nf_instance_id


def test_cca_signed_by_a_key_other_than_the_x5c_leaf_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, ca: CA
) -> None:
    _rejected(verifier, amf.cca(signing_key=ca.issue_nf_certificate().private_key), "signature")


def test_self_signed_leaf_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    leaf, key = _self_signed_nf_certificate()
    cca = amf.cca(sub=OTHER_INSTANCE, x5c=[leaf], signing_key=key)
    _rejected(verifier, cca, "signer certificate")


def test_leaf_from_another_ca_is_rejected(verifier: CcaVerifier) -> None:
    _rejected(verifier, CA().issue_nf_certificate().cca(), "signer certificate")


def test_expired_leaf_is_rejected(verifier: CcaVerifier, ca: CA) -> None:
    nf = ca.issue_nf_certificate(not_before=_utc(days=-2), not_after=_utc(days=-1))
    _rejected(verifier, nf.cca(), "signer certificate")


def test_ca_certificate_as_leaf_is_rejected(verifier: CcaVerifier, ca: CA) -> None:
    _rejected(verifier, ca.issue_nf_certificate(is_ca=True).cca(), "signer certificate")


def test_leaf_without_client_auth_is_rejected(verifier: CcaVerifier, ca: CA) -> None:
    _rejected(verifier, ca.issue_nf_certificate(client_auth=False).cca(), "clientAuth")


def test_revoked_leaf_is_rejected(ca: CA) -> None:
    nf = ca.issue_nf_certificate()
    crl = x509.load_pem_x509_crl(ca.crl([nf]))
    verifier = CcaVerifier(
        CertificateVerifier(TrustStore([ca.certificate], [crl])), producer_nf_type="UDM"
    )
    _rejected(verifier, nf.cca(), "revoked")


def test_leaf_without_nf_instance_id_is_rejected(verifier: CcaVerifier, ca: CA) -> None:
    nf = ca.issue_nf_certificate(urn_uuid=False)
    _rejected(verifier, nf.cca(), "no NF instance ID")


def test_sub_other_than_the_leaf_instance_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate
) -> None:
    _rejected(verifier, amf.cca(sub=OTHER_INSTANCE), "sub is not the signer")


def test_sub_in_upper_case_matches_the_leaf_instance(
    verifier: CcaVerifier, amf: NfCertificate
) -> None:
    verified = verifier.verify(amf.cca(sub=amf.nf_instance_id.upper()))
    assert verified.nf_instance_id == amf.nf_instance_id


@pytest.mark.parametrize("sub", [None, 7, "amf-1", ""])
def test_missing_or_malformed_sub_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, sub: object
) -> None:
    _rejected(verifier, amf.cca(claims={"sub": sub}), "sub")


def test_wrong_aud_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(aud=["NRF", "AMF"]), "aud does not include")


def test_aud_as_string_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(aud="UDM"), "aud is not an array")


@pytest.mark.parametrize("aud", [[], ["UDM", 1], [["UDM"]], ["UDM"] * 17])
def test_malformed_aud_array_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, aud: list
) -> None:
    _rejected(verifier, amf.cca(claims={"aud": aud}), "aud is not an array")


def test_too_long_a_lifetime_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    assert verifier.verify(amf.cca(lifetime=300))
    _rejected(verifier, amf.cca(lifetime=301), "lifetime")


def test_exp_not_after_iat_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(lifetime=0), "lifetime")


def test_iat_in_the_future_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    assert verifier.verify(amf.cca(iat=_now() + 20))
    _rejected(verifier, amf.cca(iat=_now() + 120), "future")


def test_expired_cca_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    assert verifier.verify(amf.cca(iat=_now() - 80, lifetime=60))
    _rejected(verifier, amf.cca(iat=_now() - 200, lifetime=60), "expired")


def test_nbf_in_the_future_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(claims={"nbf": _now() + 120}), "not yet valid")


@pytest.mark.parametrize(
    "exp", [None, "9999999999", 9999999999.0, [9999999999], True], ids=repr
)
def test_exp_missing_or_not_an_integer_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, exp: object
) -> None:
    _rejected(verifier, amf.cca(claims={"exp": exp}), "exp and iat must be integers")


def test_exp_as_json_null_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    payload = {"sub": amf.nf_instance_id, "aud": ["UDM"], "iat": _now(), "exp": None}
    header = {"x5c": [base64.b64encode(der).decode() for der in amf.chain_der]}
    cca = sign_jws(payload, amf.private_key, header=header)
    _rejected(verifier, cca, "exp and iat must be integers")


@pytest.mark.parametrize("iat", [None, "1", 1.5, False], ids=repr)
def test_iat_missing_or_not_an_integer_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, iat: object
) -> None:
    claims = {"iat": iat, "exp": _now() + 60}
    _rejected(verifier, amf.cca(claims=claims), "exp and iat must be integers")


@pytest.mark.parametrize("value", ["set1.amfset.5gc.mnc01.mcc001", 5, ["x"], ""], ids=repr)
def test_malformed_set_claim_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, value: object
) -> None:
    _rejected(verifier, amf.cca(nf_set_id=value), "NF Set ID")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "parameter, value",
    [
        ("x5u", "https://attacker.example/chain.pem"),
        ("jku", "https://attacker.example/jwks.json"),
        ("jwk", {"kty": "EC"}),
        ("crit", ["exp"]),
    ],
)
def test_key_location_and_crit_header_parameters_are_rejected(
    verifier: CcaVerifier, amf: NfCertificate, parameter: str, value: object
) -> None:
    _rejected(verifier, amf.cca(header={parameter: value}), f"parameter {parameter}")


def test_typ_other_than_jwt_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    assert verifier.verify(amf.cca(header={"typ": None}))
    _rejected(verifier, amf.cca(header={"typ": "at+jwt"}), "typ")


@pytest.mark.parametrize("x5c", [None, [], "MIIB", {"0": "MIIB"}], ids=repr)
def test_missing_or_malformed_x5c_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, x5c: object
) -> None:
    _rejected(verifier, amf.cca(header={"x5c": x5c}), "no x5c")


@pytest.mark.parametrize("count", [9, 20, 100])
def test_too_many_x5c_certificates_are_rejected(
    verifier: CcaVerifier, amf: NfCertificate, count: int
) -> None:
    cca = amf.cca(x5c=amf.chain_der * count)
    _rejected(verifier, cca, "more than 8 certificates|larger than 32768")


def test_garbage_der_in_x5c_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(x5c=[b"\x30\x82\x01\x00garbage"]), "not valid DER")
    _rejected(verifier, amf.cca(x5c=[*amf.chain_der, b"garbage"]), "not valid DER")


def test_oversized_x5c_certificate_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(x5c=[b"\x30" * 8193]), "bounded size")


@pytest.mark.parametrize("entry", ["non-base64-url_", "MIIB", "MII=", " MIIB", 5], ids=repr)
def test_x5c_entry_not_standard_base64_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, entry: object
) -> None:
    failure = _rejected(verifier, amf.cca(header={"x5c": [entry]}), "x5c entry|valid DER")
    assert "base64" in failure.detail or "DER" in failure.detail


def test_x5c_in_base64url_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    leaf = base64.urlsafe_b64encode(amf.chain_der[0]).decode()
    if "-" not in leaf and "_" not in leaf:
        leaf = leaf.rstrip("=")
    _rejected(verifier, amf.cca(header={"x5c": [leaf]}), "standard base64")


def test_oversize_cca_is_rejected_before_parsing(
    verifier: CcaVerifier, amf: NfCertificate
) -> None:
    cca = amf.cca(claims={"padding": "x" * 33000})
    _rejected(verifier, cca, "larger than 32768")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda cca: cca + "=",
        lambda cca: cca.replace(".", "=.", 1),
        lambda cca: cca + ".",
        lambda cca: "." + cca,
        lambda cca: cca.replace(".", "..", 1),
        lambda cca: cca.split(".", 1)[1],
        lambda cca: cca[:-1] + "+",
        lambda cca: " " + cca,
    ],
)
def test_value_outside_the_header_abnf_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, mangle
) -> None:
    cca = amf.cca()
    mangled = mangle(cca)
    assert mangled != cca
    _rejected(verifier, mangled, "three base64url parts|malformed|signature")


@pytest.mark.parametrize("alg", ["RS256", "HS256", "none", "ES384", "PS256"])
def test_alg_not_matching_the_leaf_key_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, alg: str
) -> None:
    _rejected(verifier, amf.cca(alg=alg), "alg does not match|three base64url parts")


def test_missing_alg_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    _rejected(verifier, amf.cca(header={"alg": None}), "no alg")


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'{"sub": "a", "sub": "b"}', b"not json", b"\xff\xfe"],
    ids=["array", "duplicate", "text", "binary"],
)
def test_payload_not_a_strict_json_object_is_rejected(
    verifier: CcaVerifier, amf: NfCertificate, payload: bytes
) -> None:
    header = {"x5c": [base64.b64encode(der).decode() for der in amf.chain_der]}
    _rejected(verifier, sign_jws(payload, amf.private_key, header=header), "malformed")


def test_header_not_a_json_object_is_rejected(verifier: CcaVerifier, amf: NfCertificate) -> None:
    segments = amf.cca().split(".")
    segments[0] = base64.urlsafe_b64encode(json.dumps(["x"]).encode()).decode().rstrip("=")
    _rejected(verifier, ".".join(segments), "malformed")


def test_looping_same_subject_chain_is_rejected_quickly(ca: CA) -> None:
    shared_key = ec.generate_private_key(ec.SECP256R1())
    base = CA(common_name="Loop CA", private_key=shared_key)
    variants = [
        CA(common_name="Loop CA", private_key=shared_key, parent=base, path_length=length)
        for length in (None, 0, 1, 2, 3, None)
    ]
    cross_signed = ca.issue_intermediate(common_name="Loop CA")
    nf = base.issue_nf_certificate()
    x5c = [nf.chain_der[0]] + [
        variant.certificate.public_bytes(serialization.Encoding.DER)
        for variant in [*variants[:6], cross_signed]
    ]
    assert len(x5c) == 8
    verifier = CcaVerifier(
        CertificateVerifier(TrustStore([ca.certificate]), cache_size=0), producer_nf_type="UDM"
    )

    started = time.perf_counter()
    for _ in range(5):
        _rejected(verifier, nf.cca(x5c=x5c), "signer certificate")
    elapsed = (time.perf_counter() - started) / 5
    print(f"looping same-subject chain rejected in {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0


_FUZZ_CA = CA()
_FUZZ_AMF = _FUZZ_CA.issue_nf_certificate(nf_set_id=AMF_SET)
_FUZZ_CCA = _FUZZ_AMF.cca()
_FUZZ_VERIFIER = CcaVerifier(
    CertificateVerifier(TrustStore([_FUZZ_CA.certificate])), producer_nf_type="UDM"
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_FUZZ_CCA) - 1), st.sampled_from("AQZaz09-_.=+/ ")),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_cca_is_rejected_without_other_errors(edits: list[tuple[int, str]]) -> None:
    mutated = list(_FUZZ_CCA)
    for position, character in edits:
        mutated[position] = character
    value = "".join(mutated)
    try:
        verified = _FUZZ_VERIFIER.verify(value)
    except CcaVerificationFailure:
        return
    assert verified.nf_instance_id == _FUZZ_AMF.nf_instance_id


_CLAIM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.text(max_size=5)),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["sub", "aud", "iat", "exp", "nbf"]), _CLAIM_VALUES))
def test_arbitrary_claim_values_are_rejected_without_other_errors(claims: dict) -> None:
    payload = {"sub": _FUZZ_AMF.nf_instance_id, "aud": ["UDM"], "iat": _now(), "exp": _now() + 9}
    payload.update(claims)
    header = {"x5c": [base64.b64encode(der).decode() for der in _FUZZ_AMF.chain_der]}
    cca = sign_jws(json.dumps(payload).encode(), _FUZZ_AMF.private_key, header=header)
    try:
        verified = _FUZZ_VERIFIER.verify(cca)
    except CcaVerificationFailure:
        return
    assert verified.claims == payload
