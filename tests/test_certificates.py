"""NF certificate chains are validated against the operator CAs and CRLs and yield the NF
identity (instance ID, NF Set ID, NF types) only when they follow the TS 33.310 profile.
"""

from __future__ import annotations

import datetime
import hashlib
import logging

import pytest
from asn1crypto import core as asn1
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sbi_setauth import certificates
from sbi_setauth.certificates import (
    CertificateError,
    CertificateVerifier,
    TrustStore,
    VerifiedCertificate,
)
from sbi_setauth.testing import CA, NF_TYPES_OID, NfCertificate

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture
def verifier(ca: CA) -> CertificateVerifier:
    return CertificateVerifier(TrustStore([ca.certificate]))


def _utc(**delta: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(**delta)


def _rejected(verifier: CertificateVerifier, nf: NfCertificate, reason: str) -> None:
    with pytest.raises(CertificateError, match=reason):
        verifier.verify(nf.chain_der)


def test_valid_nf_certificate_yields_its_identity(ca: CA, verifier: CertificateVerifier) -> None:
    amf = ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET.upper())

    verified = verifier.verify(amf.chain_der)
    assert isinstance(verified, VerifiedCertificate)
    assert verified.nf_instance_id == amf.nf_instance_id
    assert verified.nf_set_id == AMF_SET
    assert verified.nf_types == ("AMF",)
    assert verified.fingerprint == hashlib.sha256(amf.chain_der[0]).digest()
    assert verified.not_after == amf.certificate.not_valid_after_utc.timestamp()
    assert verified.public_key == amf.certificate.public_key()


def test_certificate_through_intermediate_is_accepted() -> None:
    root = CA()
    amf = root.issue_intermediate().issue_intermediate().issue_nf_certificate(nf_set_id=AMF_SET)

    verified = CertificateVerifier(TrustStore([root.certificate])).verify(amf.chain_der)
    assert verified.nf_set_id == AMF_SET


def test_certificate_from_another_ca_is_rejected(verifier: CertificateVerifier) -> None:
    _rejected(verifier, CA().issue_nf_certificate(), "path invalid")


def test_expired_certificate_is_rejected(ca: CA, verifier: CertificateVerifier) -> None:
    expired = ca.issue_nf_certificate(not_before=_utc(days=-10), not_after=_utc(seconds=-1))
    _rejected(verifier, expired, "path invalid")


def test_not_yet_valid_certificate_is_rejected(ca: CA, verifier: CertificateVerifier) -> None:
    _rejected(verifier, ca.issue_nf_certificate(not_before=_utc(hours=1)), "path invalid")


def test_ca_certificate_as_leaf_is_rejected(ca: CA, verifier: CertificateVerifier) -> None:
    _rejected(verifier, ca.issue_nf_certificate(is_ca=True), "path invalid")


def test_certificate_without_client_auth_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    _rejected(verifier, ca.issue_nf_certificate(client_auth=False), "EKU")


def test_certificate_without_extended_key_usage_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    nf = ca.issue_nf_certificate(client_auth=False, server_auth=False)
    _rejected(verifier, nf, "path invalid")


def test_certificate_without_san_is_rejected(ca: CA, verifier: CertificateVerifier) -> None:
    _rejected(verifier, ca.issue_nf_certificate(san=False), "path invalid")


def test_certificate_with_non_critical_san_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    _rejected(verifier, ca.issue_nf_certificate(san_critical=False), "criticality")


def test_certificate_with_two_nf_instance_ids_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    nf = ca.issue_nf_certificate(extra_uris=["urn:uuid:0c7b6f2e-5a1d-4c3e-9f2a-1b2c3d4e5f60"])
    _rejected(verifier, nf, "more than one urn:uuid")


def test_certificate_with_malformed_nf_instance_id_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    _rejected(verifier, ca.issue_nf_certificate("not-a-uuid"), "NF instance ID")


def test_certificate_without_urn_uuid_has_no_nf_instance_id(
    ca: CA, verifier: CertificateVerifier
) -> None:
    nf = ca.issue_nf_certificate(nf_set_id=AMF_SET, urn_uuid=False)

    verified = verifier.verify(nf.chain_der)
    assert verified.nf_instance_id is None
    assert verified.nf_set_id == AMF_SET


def test_certificate_with_malformed_set_fqdn_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    nf = ca.issue_nf_certificate(extra_dns=["set1.amfset.5gc.mnc01.mcc001.3gppnetwork.org"])
    _rejected(verifier, nf, "MNC")


def test_certificate_naming_two_nf_sets_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    nf = ca.issue_nf_certificate(
        nf_set_id=AMF_SET, extra_dns=["set2.amfset.5gc.mnc001.mcc001.3gppnetwork.org"]
    )
    _rejected(verifier, nf, "more than one NF Set")


def test_nf_type_contradicting_set_label_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    _rejected(verifier, ca.issue_nf_certificate(nf_type="SMF", nf_set_id=AMF_SET), "contradicts")


def test_malformed_nf_types_extension_is_rejected(ca: CA, verifier: CertificateVerifier) -> None:
    garbage = x509.UnrecognizedExtension(NF_TYPES_OID, b"\x30\x03\x16\x05AMF")
    nf = ca.issue_nf_certificate(nf_types=(), extra_extensions=[(garbage, False)])
    _rejected(verifier, nf, "nfTypes")


def test_nf_types_with_other_string_type_is_rejected(
    ca: CA, verifier: CertificateVerifier
) -> None:
    utf8 = asn1.SequenceOf(spec=asn1.UTF8String, value=["AMF"]).dump()
    nf = ca.issue_nf_certificate(
        nf_types=(), extra_extensions=[(x509.UnrecognizedExtension(NF_TYPES_OID, utf8), False)]
    )
    _rejected(verifier, nf, "nfTypes")


def test_garbage_der_is_rejected(verifier: CertificateVerifier) -> None:
    with pytest.raises(CertificateError, match="DER"):
        verifier.verify([b"\x30\x03\x02\x01\x01"])


def test_chain_of_nine_certificates_is_rejected(ca: CA, verifier: CertificateVerifier) -> None:
    amf = ca.issue_nf_certificate()
    with pytest.raises(CertificateError, match="more than 8"):
        verifier.verify(amf.chain_der * 9)


def test_path_longer_than_six_certificates_is_rejected() -> None:
    root = CA()
    issuer = root
    for _ in range(5):
        issuer = issuer.issue_intermediate()
    amf = issuer.issue_nf_certificate()

    verifier = CertificateVerifier(TrustStore([root.certificate]))
    with pytest.raises(CertificateError, match="path invalid"):
        verifier.verify(amf.chain_der)
    assert verifier.verify(issuer.parent.issue_nf_certificate().chain_der)


def test_oversized_certificate_is_rejected(ca: CA) -> None:
    verifier = CertificateVerifier(TrustStore([ca.certificate]), max_cert_size=256)
    with pytest.raises(CertificateError, match="larger than 256"):
        verifier.verify(ca.issue_nf_certificate().chain_der)


def test_slow_path_validation_is_abandoned(ca: CA, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certificates, "MAX_VALIDATION_SECONDS", 0.0)
    verifier = CertificateVerifier(TrustStore([ca.certificate]))
    with pytest.raises(CertificateError, match="took too long"):
        verifier.verify(ca.issue_nf_certificate().chain_der)


def test_certificate_revoked_by_crl_is_rejected(tmp_path) -> None:
    ca = CA()
    revoked, kept = ca.issue_nf_certificate(), ca.issue_nf_certificate()
    (tmp_path / "ca.crl").write_bytes(ca.crl([revoked]))
    trust = TrustStore.from_files([ca.write_pem(tmp_path / "ca.pem")], [tmp_path / "ca.crl"])

    verifier = CertificateVerifier(trust)
    _rejected(verifier, revoked, "revoked")
    assert verifier.verify(kept.chain_der).nf_instance_id == kept.nf_instance_id


def test_revoked_intermediate_in_der_crl_rejects_its_leaves(tmp_path) -> None:
    root = CA()
    intermediate = root.issue_intermediate()
    crl = x509.load_pem_x509_crl(root.crl([intermediate.certificate]))
    (tmp_path / "root.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    trust = TrustStore.from_files([root.write_pem(tmp_path / "root.pem")], [tmp_path / "root.crl"])

    verifier = CertificateVerifier(trust)
    _rejected(verifier, intermediate.issue_nf_certificate(), "revoked")
    assert verifier.verify(root.issue_nf_certificate().chain_der)


def test_crl_of_an_intermediate_revokes_its_leaves() -> None:
    root = CA()
    intermediate = root.issue_intermediate()
    revoked = intermediate.issue_nf_certificate()
    crl = x509.load_pem_x509_crl(intermediate.crl([revoked]))

    verifier = CertificateVerifier(TrustStore([root.certificate], [crl]))
    _rejected(verifier, revoked, "revoked")
    assert verifier.verify(intermediate.issue_nf_certificate().chain_der)


def test_crl_with_bad_signature_fails_closed_for_its_issuer(caplog) -> None:
    ca = CA()
    forged = x509.load_pem_x509_crl(ca.crl([], signing_key=CA().private_key))

    verifier = CertificateVerifier(TrustStore([ca.certificate], [forged]))
    with caplog.at_level(logging.ERROR, logger="sbi_setauth.certificates"):
        _rejected(verifier, ca.issue_nf_certificate(), "revocation list .* does not verify")
    assert "invalid signature" in caplog.text
    assert CertificateVerifier(TrustStore([ca.certificate])).verify(
        ca.issue_nf_certificate().chain_der
    )


def test_forged_crl_beside_a_valid_one_is_ignored() -> None:
    ca = CA()
    nf = ca.issue_nf_certificate()
    forged = x509.load_pem_x509_crl(ca.crl([nf], signing_key=CA().private_key))
    genuine = x509.load_pem_x509_crl(ca.crl([]))

    verifier = CertificateVerifier(TrustStore([ca.certificate], [forged, genuine]))
    assert verifier.verify(nf.chain_der).nf_instance_id == nf.nf_instance_id


def test_repeated_chain_is_served_from_cache_until_leaf_expires(ca: CA) -> None:
    clock = _Clock(_utc().timestamp())
    verifier = CertificateVerifier(TrustStore([ca.certificate]), clock=clock)
    amf = ca.issue_nf_certificate(not_after=_utc(minutes=10))

    first = verifier.verify(amf.chain_der)
    assert verifier.verify(amf.chain_der) is first
    clock.now += 11 * 60
    _rejected(verifier, amf, "path invalid")


def test_cache_is_bounded(ca: CA) -> None:
    verifier = CertificateVerifier(TrustStore([ca.certificate]), cache_size=2)
    nfs = [ca.issue_nf_certificate() for _ in range(3)]
    results = [verifier.verify(nf.chain_der) for nf in nfs]

    assert verifier.verify(nfs[2].chain_der) is results[2]
    assert verifier.verify(nfs[0].chain_der) is not results[0]


def test_reloaded_crl_revokes_a_cached_certificate(tmp_path) -> None:
    ca = CA()
    amf = ca.issue_nf_certificate()
    crl_path = tmp_path / "ca.crl"
    crl_path.write_bytes(ca.crl([]))
    monotonic = _Clock(0.0)
    trust = TrustStore.from_files(
        [ca.write_pem(tmp_path / "ca.pem")], [crl_path], monotonic=monotonic
    )
    verifier = CertificateVerifier(trust)
    assert verifier.verify(amf.chain_der)

    crl_path.write_bytes(ca.crl([amf, ca.issue_nf_certificate()]))
    assert verifier.verify(amf.chain_der)
    monotonic.now += 1.5
    _rejected(verifier, amf, "revoked")


def test_trust_file_reload_picks_up_a_new_anchor(tmp_path) -> None:
    old, new = CA(), CA()
    bundle = old.write_pem(tmp_path / "anchors.pem")
    monotonic = _Clock(0.0)
    verifier = CertificateVerifier(TrustStore.from_files([bundle], monotonic=monotonic))
    nf = new.issue_nf_certificate()
    _rejected(verifier, nf, "path invalid")

    bundle.write_bytes(old.cert_pem + new.cert_pem)
    monotonic.now += 30
    assert verifier.verify(nf.chain_der).nf_instance_id == nf.nf_instance_id


def test_unparsable_trust_file_keeps_previous_anchors(tmp_path, caplog) -> None:
    ca = CA()
    bundle = ca.write_pem(tmp_path / "anchors.pem")
    monotonic = _Clock(0.0)
    verifier = CertificateVerifier(TrustStore.from_files([bundle], monotonic=monotonic))

    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    monotonic.now += 30
    with caplog.at_level(logging.ERROR, logger="sbi_setauth.certificates"):
        assert verifier.verify(ca.issue_nf_certificate().chain_der)
    assert "anchors.pem" in caplog.text


def test_unreadable_files_at_start_name_the_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="missing.pem"):
        TrustStore.from_files([tmp_path / "missing.pem"])
    (tmp_path / "empty.pem").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pem"):
        TrustStore.from_files([tmp_path / "empty.pem"])
    bad_crl = tmp_path / "bad.crl"
    bad_crl.write_bytes(b"\x30\x00")
    with pytest.raises(ValueError, match="bad.crl"):
        TrustStore.from_files([CA().write_pem(tmp_path / "ca.pem")], [bad_crl])
