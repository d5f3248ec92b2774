"""Cross-matches verified credentials: who is acting, and whether the NF Set IDs agree.

Inputs are only verified facts (token, certificates, CCA); the output is the consumer that the
producer's handler gets to see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cca import VerifiedCca
from .certificates import VerifiedCertificate
from .rejections import (
    CcaVerificationFailure,
    NfSetIdMismatch,
    NfSetIdMissing,
    PeerCertificateInvalid,
    TokenCcaMismatch,
)
from .tokens import VerifiedAccessToken

__all__ = ["VerifiedConsumer", "decide"]

PEER_CERTIFICATE = "peer_certificate"
CCA = "cca"
CCA_SIGNER = "cca_signer_certificate"
ACCESS_TOKEN = "access_token"
REQUEST = "request"


@dataclass(frozen=True, slots=True)
class VerifiedConsumer:
    """The consumer NF on whose behalf a request was accepted, and what proved each fact."""

    nf_instance_id: str
    nf_set_id: str | None
    nf_type: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    via_scp: str | None
    nf_instance_id_proof: str
    nf_set_id_proofs: tuple[str, ...]
    set_token: bool
    token_key: str
    token_expires_at: int

    @property
    def display_name(self) -> str:
        return self.nf_instance_id


def decide(
    *,
    access_token: VerifiedAccessToken,
    peer: VerifiedCertificate | None,
    via_scp: str | None,
    cca: VerifiedCca | None,
    request_nf_set_id: str | None,
    require_set_proof: bool,
) -> VerifiedConsumer:
    """Return the acting consumer, or raise the rejection for the first check that fails.

    `peer` is the peer certificate when it identifies the consumer (direct communication); it
    is None through an SCP, whose own certificate says nothing about the consumer.
    """
    if peer is not None and peer.nf_instance_id is None:
        raise PeerCertificateInvalid("the peer certificate names no NF instance")
    if peer is not None and cca is not None and cca.nf_instance_id != peer.nf_instance_id:
        raise CcaVerificationFailure("the CCA names another NF instance than the peer certificate")

    acting: str
    if peer is not None and peer.nf_instance_id is not None:
        acting, proof = peer.nf_instance_id, PEER_CERTIFICATE
    elif cca is not None:
        acting, proof = cca.nf_instance_id, CCA
    else:
        acting, proof = access_token.sub, ACCESS_TOKEN

    if not access_token.is_set_token:
        if peer is not None and access_token.sub != peer.nf_instance_id:
            raise PeerCertificateInvalid("the access token was issued to another NF instance")
        if cca is not None and access_token.sub != cca.nf_instance_id:
            raise TokenCcaMismatch("the access token sub differs from the CCA sub")
        nf_set_id, set_proofs = _instance_set(peer, cca)
    else:
        nf_set_id, set_proofs = _match_sets(
            access_token, peer, cca, request_nf_set_id, require_set_proof
        )

    return VerifiedConsumer(
        nf_instance_id=acting,
        nf_set_id=nf_set_id,
        nf_type=_nf_type(peer, cca),
        scopes=access_token.scopes,
        claims=access_token.claims,
        via_scp=via_scp,
        nf_instance_id_proof=proof,
        nf_set_id_proofs=set_proofs,
        set_token=access_token.is_set_token,
        token_key=access_token.token_key,
        token_expires_at=access_token.expires_at,
    )


def _match_sets(
    access_token: VerifiedAccessToken,
    peer: VerifiedCertificate | None,
    cca: VerifiedCca | None,
    request_nf_set_id: str | None,
    require_set_proof: bool,
) -> tuple[str, tuple[str, ...]]:
    claimed = access_token.nf_set_id or ""
    if request_nf_set_id is None:
        raise NfSetIdMissing("a set token was used without the consumer NF Set ID in the request")
    if request_nf_set_id != claimed:
        raise NfSetIdMismatch("the request names another NF Set than the access token")

    carriers = [(REQUEST, request_nf_set_id), (ACCESS_TOKEN, claimed)]
    if cca is not None:
        carriers.append((CCA, cca.nf_set_id))
        carriers.append((CCA_SIGNER, cca.signer.nf_set_id))
    if peer is not None:
        carriers.append((PEER_CERTIFICATE, peer.nf_set_id))
    for source, nf_set_id in carriers:
        if nf_set_id is not None and nf_set_id != claimed:
            raise NfSetIdMismatch(f"the {source.replace('_', ' ')} names another NF Set")

    proofs = tuple(source for source, nf_set_id in carriers if nf_set_id is not None)
    proven_by_certificate = CCA_SIGNER in proofs or PEER_CERTIFICATE in proofs
    if require_set_proof and not proven_by_certificate:
        raise NfSetIdMissing("no certificate proves membership of the NF Set")
    return claimed, proofs


def _instance_set(
    peer: VerifiedCertificate | None, cca: VerifiedCca | None
) -> tuple[str | None, tuple[str, ...]]:
    if peer is not None and peer.nf_set_id is not None:
        return peer.nf_set_id, (PEER_CERTIFICATE,)
    if cca is not None and cca.signer.nf_set_id is not None:
        return cca.signer.nf_set_id, (CCA_SIGNER,)
    return None, ()


def _nf_type(peer: VerifiedCertificate | None, cca: VerifiedCca | None) -> str | None:
    for certificate in (peer, cca.signer if cca is not None else None):
        if certificate is not None and certificate.nf_types:
            return certificate.nf_types[0]
    return None
