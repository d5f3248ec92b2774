"""The test kit produces certificates and tokens shaped as the 3GPP profiles say."""

from __future__ import annotations

import base64
import json
import ssl
import uuid

import jwt
import pytest
from asn1crypto import core as asn1
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sbi_setauth.testing import CA, NF_TYPES_OID, Nrf

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"


class _NfTypes(asn1.SequenceOf):
    _child_spec = asn1.IA5String


def _b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def test_nf_certificate_follows_ts_33_310_profile() -> None:
    amf = CA().issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    cert = amf.certificate

    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "FI"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:uuid:{amf.nf_instance_id}"
    ]
    assert str(uuid.UUID(amf.nf_instance_id)) == amf.nf_instance_id
    dns = san.value.get_values_for_type(x509.DNSName)
    assert f"{AMF_SET}.3gppnetwork.org" in dns
    assert amf.fqdn in dns and amf.fqdn.endswith(".3gppnetwork.org")
    nf_types = cert.extensions.get_extension_for_oid(NF_TYPES_OID)
    assert _NfTypes.load(nf_types.value.public_bytes()).native == ["AMF"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_nf_certificate_without_set_has_no_set_fqdn() -> None:
    smf = CA().issue_nf_certificate("0c7b6f2e-5a1d-4c3e-9f2a-1b2c3d4e5f60", nf_type="SMF")

    dns = smf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert smf.nf_set_id is None
    assert not any(".smfset." in name for name in dns.value.get_values_for_type(x509.DNSName))
    assert smf.nf_instance_id == "0c7b6f2e-5a1d-4c3e-9f2a-1b2c3d4e5f60"


def test_chain_from_intermediate_lists_leaf_then_intermediates() -> None:
    root = CA()
    intermediate = root.issue_intermediate()
    amf = intermediate.issue_nf_certificate()

    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in amf.chain_pem]
    assert chain == [amf.certificate, intermediate.certificate]
    assert chain[1].issuer == root.certificate.subject
    assert [x509.load_der_x509_certificate(der) for der in amf.chain_der] == chain


def test_written_cert_and_key_load_into_a_tls_context(tmp_path) -> None:
    ca = CA()
    cert_path, key_path = ca.issue_nf_certificate().write_cert_and_key(tmp_path)
    anchor_path = ca.write_pem(tmp_path / "ca.pem")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=anchor_path)
    context.load_cert_chain(cert_path, key_path)
    assert key_path.stat().st_mode & 0o077 == 0


def test_access_token_decodes_with_nrf_public_key_and_jwks(tmp_path) -> None:
    nrf = Nrf()
    token = nrf.access_token(
        sub="5f1c6b2e-1d2c-4b3a-9e8f-7a6b5c4d3e2f", aud="UDM", scope="nudm-sdm", nf_set_id=AMF_SET
    )

    claims = jwt.decode(token, nrf.public_key_pem, algorithms=["ES256"], audience="UDM")
    assert claims["iss"] == nrf.nrf_instance_id
    assert claims["scope"] == "nudm-sdm"
    assert claims["consumerNfSetId"] == AMF_SET
    assert claims["exp"] - claims["iat"] == 600 and claims["jti"]
    assert jwt.get_unverified_header(token)["kid"] == "nrf-key-1"
    jwks = json.loads(nrf.write_jwks(tmp_path / "nrf.jwks").read_text())
    key = jwt.PyJWKSet.from_dict(jwks)["nrf-key-1"].key
    assert jwt.decode(token, key, algorithms=["ES256"], audience="UDM")["sub"] == claims["sub"]


def test_access_token_overrides_add_and_remove_claims_and_header() -> None:
    nrf = Nrf(key_type="rsa")
    token = nrf.access_token(
        sub="a", aud=["b"], scope="s", claims={"jti": None, "extra": 1}, header={"kid": "other"}
    )

    claims = jwt.decode(token, nrf.public_key, algorithms=["RS256"], audience="b")
    assert "jti" not in claims and claims["extra"] == 1
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": "other"}


def test_cca_header_carries_x5c_chain_and_claims() -> None:
    root = CA()
    amf = root.issue_intermediate().issue_nf_certificate(nf_set_id=AMF_SET)
    cca = amf.cca(aud=["UDM", "NRF"])

    header = _b64url_json(cca.split(".")[0])
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    assert [base64.b64decode(entry, validate=True) for entry in header["x5c"]] == amf.chain_der
    claims = jwt.decode(
        cca, amf.certificate.public_key(), algorithms=["ES256"], audience="UDM"
    )
    assert claims["sub"] == amf.nf_instance_id
    assert claims["aud"] == ["UDM", "NRF"]
    assert claims["consumerNfSetId"] == AMF_SET
    assert claims["exp"] - claims["iat"] == 60


def test_cca_knobs_build_broken_assertions() -> None:
    amf = CA().issue_nf_certificate(nf_set_id=AMF_SET)

    header = _b64url_json(amf.cca(header={"x5c": None, "x5u": "https://x"}).split(".")[0])
    assert "x5c" not in header and header["x5u"] == "https://x"
    assert _b64url_json(amf.cca(aud="UDM").split(".")[1])["aud"] == "UDM"
    assert "consumerNfSetId" not in _b64url_json(amf.cca(nf_set_id=None).split(".")[1])
    assert _b64url_json(amf.cca(alg="RS256").split(".")[0])["alg"] == "RS256"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            amf.cca(signing_key=CA().private_key),
            amf.certificate.public_key(),
            algorithms=["ES256"],
            audience="UDM",
        )


def test_crl_revokes_given_certificates_and_is_signed_by_the_ca() -> None:
    ca = CA()
    revoked, kept = ca.issue_nf_certificate(), ca.issue_nf_certificate()

    crl = x509.load_pem_x509_crl(ca.crl([revoked]))
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.get_revoked_certificate_by_serial_number(revoked.certificate.serial_number)
    assert crl.get_revoked_certificate_by_serial_number(kept.certificate.serial_number) is None
    assert crl.issuer == ca.certificate.subject


@pytest.mark.parametrize("key_type", ["ec", "ec384", "rsa", "ed25519"])
def test_nf_certificate_key_types_sign_ccas(key_type: str) -> None:
    amf = CA().issue_nf_certificate(key_type=key_type)

    alg = _b64url_json(amf.cca().split(".")[0])["alg"]
    public_pem = amf.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert jwt.decode(amf.cca(), public_pem, algorithms=[alg], audience="UDM")
