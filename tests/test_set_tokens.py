"""The NF Set cross-match: request header, token claim, CCA claim, CCA signer and peer certificate.

The matrix gives each of the five sources the values absent, equal (spelled differently) and
different, and checks the outcome and cause against the rules written out in `expected`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sbi_setauth.testing import NfCertificate

from .conftest import AMF_SET, OTHER_AMF_SET, Pki, Producer, bearer, binding, build_producer

ABSENT, EQUAL, DIFFERENT = "absent", "equal", "different"
VALUES = (ABSENT, EQUAL, DIFFERENT)
ACTING = "2b0f7a36-1f1c-4a5e-9f27-7c9f0d3e8a10"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Producer, dict]:
    pki = Pki(Path(tmp_path_factory.mktemp("matrix")))
    producer = build_producer(pki.settings())
    certificates = {
        ABSENT: pki.ca.issue_nf_certificate(ACTING, nf_type="AMF"),
        EQUAL: pki.ca.issue_nf_certificate(ACTING, nf_type="AMF", nf_set_id=AMF_SET.upper()),
        DIFFERENT: pki.ca.issue_nf_certificate(ACTING, nf_type="AMF", nf_set_id=OTHER_AMF_SET),
    }
    return pki, producer, certificates


def spelled(value: str, spelling: str) -> str | None:
    """The set for `value`, written in the given source's own spelling."""
    if value == ABSENT:
        return None
    if value == DIFFERENT:
        return OTHER_AMF_SET
    return {"upper": AMF_SET.upper(), "mixed": "Set1.AmfSet.5gc.MNC001.mcc001"}.get(
        spelling, AMF_SET
    )


def expected(request: str, token: str, cca: str, signer: str, peer: str) -> tuple[int, str | None]:
    """The SPEC's rules for a request with a CCA and a peer certificate of the same instance."""
    if token == ABSENT:
        return 200, None
    if request == ABSENT:
        return 403, "NF_SET_ID_MISSING"
    present = {value for value in (request, token, cca, signer, peer) if value != ABSENT}
    if len(present) > 1:
        return 403, "NF_SET_ID_MISMATCH"
    if signer == ABSENT and peer == ABSENT:
        return 403, "NF_SET_ID_MISSING"
    return 200, None


MATRIX = list(itertools.product(VALUES, repeat=5))


@pytest.mark.parametrize(
    "request_set,token_set,cca_set,signer_set,peer_set",
    MATRIX,
    ids=["-".join(v[0] for v in case) for case in MATRIX],
)
async def test_nf_set_cross_match_matrix(
    world, request_set: str, token_set: str, cca_set: str, signer_set: str, peer_set: str
) -> None:
    pki, producer, certificates = world
    peer: NfCertificate = certificates[peer_set]
    signer: NfCertificate = certificates[signer_set]
    token_claim = spelled(token_set, "canonical")
    token = pki.nrf.access_token(sub=ACTING, aud="UDM", scope="nudm-sdm", nf_set_id=token_claim)
    headers = dict(bearer(token))
    headers["3gpp-Sbi-Client-Credentials"] = signer.cca(nf_set_id=spelled(cca_set, "mixed"))
    request_claim = spelled(request_set, "upper")
    if request_claim is not None:
        headers["3gpp-Sbi-Binding"] = binding(request_claim)

    answer = await producer.request(headers=headers, peer=peer)

    status, cause = expected(request_set, token_set, cca_set, signer_set, peer_set)
    assert (answer.status, answer.cause) == (status, cause)
    assert answer.handler_ran is (status == 200)
    if status == 200:
        consumer = producer.consumers[-1]
        assert consumer.nf_instance_id == ACTING
        assert consumer.set_token is (token_set != ABSENT)


async def test_set_token_without_cca_proven_by_peer_certificate(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf = pki.amf()
    other_instance_token_holder = pki.amf()
    token = pki.set_token(other_instance_token_holder)
    headers = {**bearer(token), "3gpp-Sbi-Binding": binding(AMF_SET)}
    answer = await producer.request(headers=headers, peer=amf)
    assert answer.status == 200
    consumer = producer.consumers[-1]
    assert consumer.nf_instance_id == amf.nf_instance_id
    assert consumer.nf_set_id == AMF_SET
    assert consumer.nf_instance_id_proof == "peer_certificate"
    assert "peer_certificate" in consumer.nf_set_id_proofs


async def test_set_token_from_other_set_is_rejected(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    intruder = pki.amf(OTHER_AMF_SET)
    token = pki.set_token(pki.amf())
    headers = {**bearer(token), "3gpp-Sbi-Binding": binding(OTHER_AMF_SET)}
    answer = await producer.request(headers=headers, peer=intruder)
    assert (answer.status, answer.cause, answer.handler_ran) == (403, "NF_SET_ID_MISMATCH", False)
    headers["3gpp-Sbi-Binding"] = binding(AMF_SET)
    answer = await producer.request(headers=headers, peer=intruder)
    assert (answer.status, answer.cause, answer.handler_ran) == (403, "NF_SET_ID_MISMATCH", False)


async def test_cca_set_claim_without_certificate_backing_is_no_proof(pki: Pki) -> None:
    producer = build_producer(pki.settings(peer_cert="none"))
    unbacked = pki.amf(None)
    token = pki.set_token(unbacked)
    headers = {
        **bearer(token),
        "3gpp-Sbi-Binding": binding(AMF_SET),
        "3gpp-Sbi-Client-Credentials": unbacked.cca(nf_set_id=AMF_SET),
    }
    answer = await producer.request(headers=headers)
    assert (answer.status, answer.cause) == (403, "NF_SET_ID_MISSING")


async def test_set_proof_can_be_turned_off(pki: Pki) -> None:
    producer = build_producer(pki.settings(peer_cert="none", require_set_proof=False))
    unbacked = pki.amf(None)
    headers = {
        **bearer(pki.set_token(unbacked)),
        "3gpp-Sbi-Binding": binding(AMF_SET),
        "3gpp-Sbi-Client-Credentials": unbacked.cca(nf_set_id=AMF_SET),
    }
    answer = await producer.request(headers=headers)
    assert answer.status == 200
    assert producer.consumers[-1].nf_instance_id_proof == "cca"


async def test_cca_signer_proves_set_without_peer_certificate(pki: Pki) -> None:
    producer = build_producer(pki.settings(peer_cert="none"))
    amf = pki.amf()
    headers = {
        **bearer(pki.set_token(pki.amf())),
        "3gpp-Sbi-Binding": binding(AMF_SET),
        "3gpp-Sbi-Client-Credentials": amf.cca(),
    }
    answer = await producer.request(headers=headers)
    assert answer.status == 200
    consumer = producer.consumers[-1]
    assert consumer.nf_instance_id == amf.nf_instance_id
    assert consumer.nf_instance_id_proof == "cca"
    assert "cca_signer_certificate" in consumer.nf_set_id_proofs


@pytest.mark.parametrize(
    "header_value,status,cause",
    [
        ("bl=nf-set; nfset=set1.region48.amfset.5gc.mnc001.mcc001", 200, None),
        ("bl=nf-set; nfset=SET1-REGION48.AMFSET.5GC.MNC001.MCC001", 200, None),
        ("bl=nf-set; nfset=set1-region48.amfset.5gc.mnc01.mcc001", 400, "INVALID_REQUEST"),
        ("bl=nf-set; nfset=set1-region48.amfset.5gc.mnc001.mcc001.", 400, "INVALID_REQUEST"),
        (
            "bl=nf-set; nfset=set1-region48.amfset.5gc.mnc001.mcc001, bl=nf-set; "
            "nfset=set2-region48.amfset.5gc.mnc001.mcc001",
            400,
            "INVALID_REQUEST",
        ),
        (
            "bl=nf-set; nfset=set1-region48.amfset.5gc.mnc001.mcc001, , bl=nf-instance; "
            "nfinst=2b0f7a36-1f1c-4a5e-9f27-7c9f0d3e8a10",
            200,
            None,
        ),
        ("nfset=set1-region48.amfset.5gc.mnc001.mcc001", 400, "INVALID_REQUEST"),
    ],
    ids=[
        "legacy-region",
        "upper-case",
        "two-digit-mnc",
        "trailing-dot",
        "two-sets",
        "empty-element",
        "no-bl",
    ],
)
async def test_binding_header_forms(pki: Pki, header_value: str, status: int, cause) -> None:
    region_set = "set1-region48.amfset.5gc.mnc001.mcc001"
    producer = build_producer(pki.settings())
    amf = pki.amf(region_set)
    headers = {
        **bearer(pki.set_token(amf, nf_set_id=region_set)),
        "3gpp-Sbi-Binding": header_value,
    }
    answer = await producer.request(headers=headers, peer=amf)
    assert (answer.status, answer.cause) == (status, cause)


async def test_binding_header_lines_are_combined(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf = pki.amf()
    headers = [
        *bearer(pki.set_token(amf)).items(),
        ("3gpp-Sbi-Binding", "bl=nf-instance; nfinst=" + amf.nf_instance_id),
        ("3gpp-Sbi-Binding", binding(AMF_SET)),
    ]
    assert (await producer.request(headers=headers, peer=amf)).status == 200
    headers.append(("3gpp-Sbi-Binding", binding(OTHER_AMF_SET)))
    answer = await producer.request(headers=headers, peer=amf)
    assert (answer.status, answer.cause) == (400, "INVALID_REQUEST")


async def test_oversized_set_header_is_400(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf = pki.amf()
    headers = {**bearer(pki.set_token(amf)), "3gpp-Sbi-Binding": binding(AMF_SET) + " " * 5000}
    answer = await producer.request(headers=headers, peer=amf)
    assert (answer.status, answer.cause) == (400, "INVALID_REQUEST")


async def test_custom_set_header_and_claim(pki: Pki) -> None:
    producer = build_producer(pki.settings(set_header="X-Consumer-Set", set_claim="nfSetId"))
    amf = pki.amf()
    token = pki.set_token(amf, set_claim="nfSetId")
    answer = await producer.request(headers={**bearer(token), "X-Consumer-Set": AMF_SET}, peer=amf)
    assert answer.status == 200 and producer.consumers[-1].nf_set_id == AMF_SET
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert (answer.status, answer.cause) == (403, "NF_SET_ID_MISSING")


async def test_instance_token_bound_to_peer_certificate(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf, other = pki.amf(None), pki.amf(None)
    answer = await producer.request(headers=bearer(pki.instance_token(other)), peer=amf)
    assert (answer.status, answer.cause) == (403, "PEER_CERTIFICATE_INVALID")


async def test_instance_token_bound_to_cca_sub_without_peer_certificate(pki: Pki) -> None:
    producer = build_producer(pki.settings(peer_cert="none"))
    amf, other = pki.amf(None), pki.amf(None)
    headers = {**bearer(pki.instance_token(other)), "3gpp-Sbi-Client-Credentials": amf.cca()}
    answer = await producer.request(headers=headers)
    assert (answer.status, answer.cause) == (403, "TOKEN_CCA_MISMATCH")


async def test_cca_of_another_instance_than_peer_is_cca_failure(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf, other = pki.amf(None), pki.amf(None)
    headers = {**bearer(pki.instance_token(amf)), "3gpp-Sbi-Client-Credentials": other.cca()}
    answer = await producer.request(headers=headers, peer=amf)
    assert (answer.status, answer.cause) == (403, "CCA_VERIFICATION_FAILURE")


async def test_required_cca_missing_is_cca_failure(pki: Pki) -> None:
    producer = build_producer(pki.settings(require_cca=True))
    amf = pki.amf(None)
    answer = await producer.request(headers=bearer(pki.instance_token(amf)), peer=amf)
    assert (answer.status, answer.cause) == (403, "CCA_VERIFICATION_FAILURE")


async def test_missing_peer_certificate_is_rejected(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf = pki.amf(None)
    answer = await producer.request(headers=bearer(pki.instance_token(amf)))
    assert (answer.status, answer.cause) == (403, "PEER_CERTIFICATE_INVALID")


async def test_peer_certificate_from_another_ca_is_rejected(pki: Pki) -> None:
    from sbi_setauth.testing import CA

    producer = build_producer(pki.settings())
    stranger = CA().issue_nf_certificate(nf_type="AMF")
    answer = await producer.request(headers=bearer(pki.instance_token(stranger)), peer=stranger)
    assert (answer.status, answer.cause) == (403, "PEER_CERTIFICATE_INVALID")


async def test_request_through_scp_uses_cca_identity(pki: Pki) -> None:
    scp = pki.ca.issue_nf_certificate(nf_type="SCP")
    producer = build_producer(pki.settings(trusted_scps=scp.nf_instance_id))
    amf = pki.amf()
    headers = {
        **bearer(pki.set_token(pki.amf())),
        "3gpp-Sbi-Binding": binding(AMF_SET),
        "3gpp-Sbi-Client-Credentials": amf.cca(),
    }
    answer = await producer.request(headers=headers, peer=scp)
    assert answer.status == 200
    consumer = producer.consumers[-1]
    assert consumer.via_scp == scp.nf_instance_id
    assert consumer.nf_instance_id == amf.nf_instance_id
    del headers["3gpp-Sbi-Client-Credentials"]
    answer = await producer.request(headers=headers, peer=scp)
    assert (answer.status, answer.cause) == (403, "CCA_VERIFICATION_FAILURE")


async def test_instance_token_through_scp_compared_with_cca(pki: Pki) -> None:
    scp = pki.ca.issue_nf_certificate(nf_type="SCP")
    producer = build_producer(pki.settings(trusted_scps=scp.nf_instance_id))
    amf, other = pki.amf(None), pki.amf(None)
    good = {**bearer(pki.instance_token(amf)), "3gpp-Sbi-Client-Credentials": amf.cca()}
    assert (await producer.request(headers=good, peer=scp)).status == 200
    bad = {**bearer(pki.instance_token(other)), "3gpp-Sbi-Client-Credentials": amf.cca()}
    answer = await producer.request(headers=bad, peer=scp)
    assert (answer.status, answer.cause) == (403, "TOKEN_CCA_MISMATCH")


async def test_peer_certificate_without_instance_id_is_refused_before_the_token(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    anonymous = pki.ca.issue_nf_certificate(nf_type="AMF", urn_uuid=False)
    expired = pki.nrf.access_token(
        sub=anonymous.nf_instance_id, aud="UDM", scope="nudm-sdm", iat=0, exp=60
    )
    answer = await producer.request(headers=bearer(expired), peer=anonymous)
    assert (answer.status, answer.cause) == (403, "PEER_CERTIFICATE_INVALID")


async def test_custom_set_header_lines_compare_after_normalising(pki: Pki) -> None:
    producer = build_producer(pki.settings(set_header="X-Consumer-Set"))
    region_set = "set1-region48.amfset.5gc.mnc001.mcc001"
    amf = pki.amf(region_set)
    headers = [
        *bearer(pki.set_token(amf, nf_set_id=region_set)).items(),
        ("X-Consumer-Set", region_set.upper()),
        ("X-Consumer-Set", "set1.region48.amfset.5gc.mnc001.mcc001"),
    ]
    assert (await producer.request(headers=headers, peer=amf)).status == 200


async def test_set_token_stays_exclusive_within_the_clock_skew_after_exp(pki: Pki) -> None:
    import time

    producer = build_producer(pki.settings())
    amf_a, amf_b = pki.amf(), pki.amf()
    now = int(time.time())
    token = pki.set_token(amf_a, iat=now - 600, exp=now - 5)
    headers = {**bearer(token), "3gpp-Sbi-Binding": binding(AMF_SET)}
    assert (await producer.request(headers=headers, peer=amf_a)).status == 200
    answer = await producer.request(headers=headers, peer=amf_b)
    assert (answer.status, answer.cause) == (403, "SET_TOKEN_IN_USE")


async def test_forwarded_certificate_with_non_ascii_subject_is_read(pki: Pki) -> None:
    from urllib.parse import quote

    producer = build_producer(pki.settings(peer_cert="xfcc", trusted_proxies="127.0.0.1"))
    amf = pki.amf(None)
    xfcc = f'Subject="O=Telef\u00f3nica";Cert="{quote(amf.cert_pem.decode(), safe="")}"'
    answer = await producer.request(
        headers=bearer(pki.instance_token(amf)),
        raw_headers=[(b"x-forwarded-client-cert", xfcc.encode("utf-8"))],
    )
    assert answer.status == 200


async def test_revoked_peer_certificate_is_refused_through_settings(pki: Pki) -> None:
    amf, revoked = pki.amf(None), pki.amf(None)
    crl = pki.directory / "crl.pem"
    crl.write_bytes(pki.ca.crl([revoked]))
    producer = build_producer(pki.settings(revocation_lists=str(crl)))
    assert (
        await producer.request(headers=bearer(pki.instance_token(amf)), peer=amf)
    ).status == 200
    answer = await producer.request(headers=bearer(pki.instance_token(revoked)), peer=revoked)
    assert (answer.status, answer.cause) == (403, "PEER_CERTIFICATE_INVALID")


async def test_revoked_cca_signer_is_refused_through_settings(pki: Pki) -> None:
    revoked = pki.amf()
    crl = pki.directory / "crl.pem"
    crl.write_bytes(pki.ca.crl([revoked]))
    producer = build_producer(pki.settings(peer_cert="none", revocation_lists=str(crl)))
    headers = {
        **bearer(pki.set_token(pki.amf())),
        "3gpp-Sbi-Binding": binding(AMF_SET),
        "3gpp-Sbi-Client-Credentials": revoked.cca(),
    }
    answer = await producer.request(headers=headers)
    assert (answer.status, answer.cause) == (403, "CCA_VERIFICATION_FAILURE")
