"""Public Wycheproof vectors sent through the producer's real request paths, not only `jws`.

The JWS vectors are whole tokens and go through the middleware unchanged. The P-256 P1363 and
RSA PKCS#1 vectors sign arbitrary messages, so their message and signature are handed to the
access-token and CCA checks in place of a decoded compact serialization; every step after the
base64url decoding (algorithm pinning, key selection, signature, claims, certificate chain) is
the real one, and a valid vector must lead to an accepted request.
"""

from __future__ import annotations

import base64
import collections
import datetime
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import sbi_setauth.cca
import sbi_setauth.tokens
from sbi_setauth.jws import ParsedJws, parse_compact
from sbi_setauth.settings import KNOWN_TOKEN_ALGORITHMS, SettingsError

from .conftest import Answer, Pki, Producer, bearer, build_producer

VECTORS = Path(__file__).parent / "vectors"
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
TOKEN_CAUSES = {(400, "INVALID_REQUEST"), (401, "ACCESS_TOKEN_INVALID")}


def load_vectors(file_name: str) -> dict[str, Any]:
    return json.loads((VECTORS / file_name).read_text())


def jws_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return {}


def implied_alg(public_jwk: dict[str, Any]) -> str | None:
    """The token algorithm an operator would configure for this key, or None if none fits."""
    if public_jwk.get("alg") in KNOWN_TOKEN_ALGORITHMS:
        return public_jwk["alg"]
    if public_jwk.get("kty") == "RSA":
        return "RS256"
    if public_jwk.get("kty") == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(public_jwk.get("crv"))
    return None


def is_configurable(public_jwk: dict[str, Any]) -> bool:
    """Whether an operator can name this key in NRF_KEYS: a signature key with a JWS alg."""
    key_ops = public_jwk.get("key_ops")
    return (
        public_jwk.get("kty") in ("EC", "RSA")
        and public_jwk.get("alg", "ES256") in KNOWN_TOKEN_ALGORITHMS
        and public_jwk.get("use", "sig") == "sig"
        and (key_ops is None or "verify" in key_ops)
    )


def reason_to_refuse(group_jwk: dict[str, Any], token: str, configured: bool) -> str | None:
    """Why a token Wycheproof calls valid never passes the signature step here, or None."""
    if not configured:
        return "the key cannot be configured as an NRF key"
    if group_jwk.get("kty") == "oct":
        return "HMAC keys are never NRF keys"
    if jws_header(token).get("alg") != implied_alg(group_jwk):
        return "the token's alg is not the configured one"
    if token.split(".")[1] == "":
        return "an empty payload segment is not three non-empty segments"
    return None


class SignatureSpy:
    """Records whether the access-token check's signature step passed, request by request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outcomes: list[bool] = []
        original = sbi_setauth.tokens.verify_signature

        def recording(parsed: ParsedJws, alg: str, key: PublicKeyTypes) -> None:
            try:
                original(parsed, alg, key)
            except Exception:
                self.outcomes.append(False)
                raise
            self.outcomes.append(True)

        monkeypatch.setattr(sbi_setauth.tokens, "verify_signature", recording)

    def passed(self) -> bool:
        passed = any(self.outcomes)
        self.outcomes.clear()
        return passed


def inject_parsed(monkeypatch: pytest.MonkeyPatch, module: Any) -> dict[str, ParsedJws]:
    """Make `module.parse_compact` return the given ParsedJws for placeholder strings."""
    injected: dict[str, ParsedJws] = {}

    def parse(value: str, *, max_size: int) -> ParsedJws:
        if value in injected:
            return injected.pop(value)
        return parse_compact(value, max_size=max_size)

    monkeypatch.setattr(module, "parse_compact", parse)
    return injected


def assert_rejected_as_token(answer: Answer) -> None:
    assert not answer.handler_ran
    assert (answer.status, answer.cause) in TOKEN_CAUSES, answer.body


async def test_wycheproof_jws_tokens_through_the_middleware(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = load_vectors("json_web_signature_test.json")
    spy = SignatureSpy(monkeypatch)
    fallback = build_producer(pki.settings(peer_cert="none", trust_anchors=""))
    counts: collections.Counter[str] = collections.Counter()
    wrongly_judged = []

    for number, group in enumerate(vectors["testGroups"]):
        group_jwk = group["private"]
        public_jwk = {k: v for k, v in group_jwk.items() if k not in PRIVATE_JWK_MEMBERS}
        key_file = tmp_path / f"group{number}.jwk"
        key_file.write_text(json.dumps(public_jwk))
        alg = implied_alg(public_jwk)
        producer = fallback
        try:
            if alg is not None:
                producer = build_producer(
                    pki.settings(
                        peer_cert="none", trust_anchors="", nrf_keys=str(key_file),
                        token_algorithms=alg,
                    )
                )
        except SettingsError:
            producer = fallback
        configured = producer is not fallback
        assert configured == is_configurable(public_jwk), public_jwk.get("kid")

        for test in group["tests"]:
            counts["run"] += 1
            answer = await producer.request(headers=bearer(test["jws"]))
            assert_rejected_as_token(answer)
            signature_passed = spy.passed()
            result = test["result"]
            if result == "invalid":
                counts[f"invalid, signature {'PASSED' if signature_passed else 'failed'}"] += 1
                if signature_passed:
                    wrongly_judged.append((test["tcId"], test["comment"]))
            elif result == "valid":
                reason = reason_to_refuse(group_jwk, test["jws"], configured)
                counts[f"valid, {reason or 'signature passed, claims refused'}"] += 1
                if signature_passed != (reason is None):
                    wrongly_judged.append((test["tcId"], test["comment"], reason))
                if signature_passed:
                    assert "signature" not in answer.json()["detail"]
            else:
                counts["acceptable"] += 1

    print("\nWycheproof JWS through the middleware:", dict(sorted(counts.items())))
    assert wrongly_judged == []
    assert counts["run"] >= vectors["numberOfTests"]
    assert counts["valid, signature passed, claims refused"] >= 20


def instance_claims(pki: Pki, sub: str) -> bytes:
    now = int(time.time())
    claims = {
        "iss": pki.nrf.nrf_instance_id, "sub": sub, "aud": "UDM", "scope": "nudm-sdm",
        "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
    }
    return json.dumps(claims).encode()


async def run_signature_vectors_as_tokens(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str, alg: str
) -> collections.Counter[str]:
    vectors = load_vectors(file_name)
    injected = inject_parsed(monkeypatch, sbi_setauth.tokens)
    counts: collections.Counter[str] = collections.Counter()
    wrongly_judged = []

    for number, group in enumerate(vectors["testGroups"]):
        key_file = tmp_path / f"{alg}-group{number}.pem"
        key_file.write_text(group["publicKeyPem"])
        producer = build_producer(
            pki.settings(
                peer_cert="none", trust_anchors="", nrf_keys=str(key_file), token_algorithms=alg
            )
        )
        for test in group["tests"]:
            counts["run"] += 1
            placeholder = f"vector{number}x{test['tcId']}.p.s"
            injected[placeholder] = ParsedJws(
                header={"alg": alg, "typ": "JWT"},
                payload=instance_claims(pki, str(uuid.uuid4())),
                signing_input=bytes.fromhex(test["msg"]),
                signature=bytes.fromhex(test["sig"]),
            )
            answer = await producer.request(headers=bearer(placeholder))
            accepted = answer.status == 200 and answer.handler_ran
            counts[f"{test['result']} {'accepted' if accepted else 'rejected'}"] += 1
            if not accepted:
                assert (answer.status, answer.cause) == (401, "ACCESS_TOKEN_INVALID")
                assert "signature" in answer.json()["detail"]
            if test["result"] != "acceptable" and accepted != (test["result"] == "valid"):
                wrongly_judged.append((test["tcId"], test["comment"]))

    print(f"\nWycheproof {file_name} as access tokens:", dict(sorted(counts.items())))
    assert wrongly_judged == []
    assert counts["run"] >= vectors["numberOfTests"]
    return counts


async def test_wycheproof_p256_signatures_as_access_tokens(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = await run_signature_vectors_as_tokens(
        pki, tmp_path, monkeypatch, "ecdsa_secp256r1_sha256_p1363_test.json", "ES256"
    )
    assert counts["valid accepted"] > 100 and counts["invalid rejected"] > 50


async def test_wycheproof_rsa_signatures_as_access_tokens(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = await run_signature_vectors_as_tokens(
        pki, tmp_path, monkeypatch, "rsa_signature_2048_sha256_test.json", "RS256"
    )
    assert counts["valid accepted"] > 0 and counts["invalid rejected"] > 200


def nf_certificate_for_key(pki: Pki, public_key: PublicKeyTypes, nf_instance_id: str) -> bytes:
    """An NF certificate (TS 33.310 profile) from the test CA for a key we hold no secret of."""
    now = datetime.datetime.now(datetime.timezone.utc)
    fqdn = f"{nf_instance_id}.amf.5gc.mnc001.mcc001.3gppnetwork.org"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FI"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Operator"),
            x509.NameAttribute(NameOID.COMMON_NAME, fqdn[:64]),
        ]
    )
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(f"urn:uuid:{nf_instance_id}"), x509.DNSName(fqdn)]
    )
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(pki.ca.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(usage, True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
            False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                pki.ca.private_key.public_key()  # type: ignore[arg-type]
            ),
            False,
        )
        .add_extension(san, True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(pki.ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return certificate.public_bytes(serialization.Encoding.DER)


async def test_wycheproof_p256_signatures_as_ccas(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = load_vectors("ecdsa_secp256r1_sha256_p1363_test.json")
    producer: Producer = build_producer(pki.settings(peer_cert="none"))
    injected = inject_parsed(monkeypatch, sbi_setauth.cca)
    counts: collections.Counter[str] = collections.Counter()
    wrongly_judged = []

    for number, group in enumerate(vectors["testGroups"]):
        public_key = serialization.load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
        nf_instance_id = str(uuid.uuid4())
        leaf = base64.b64encode(nf_certificate_for_key(pki, public_key, nf_instance_id)).decode()
        token = pki.nrf.access_token(sub=nf_instance_id, aud="UDM", scope="nudm-sdm")
        now = int(time.time())
        claims = {"sub": nf_instance_id, "aud": ["UDM"], "iat": now, "exp": now + 60}
        for test in group["tests"]:
            counts["run"] += 1
            placeholder = f"cca{number}x{test['tcId']}.p.s"
            injected[placeholder] = ParsedJws(
                header={"alg": "ES256", "typ": "JWT", "x5c": [leaf]},
                payload=json.dumps(claims).encode(),
                signing_input=bytes.fromhex(test["msg"]),
                signature=bytes.fromhex(test["sig"]),
            )
            headers = {**bearer(token), "3gpp-Sbi-Client-Credentials": placeholder}
            answer = await producer.request(headers=headers)
            accepted = answer.status == 200 and answer.handler_ran
            counts[f"{test['result']} {'accepted' if accepted else 'rejected'}"] += 1
            if accepted:
                assert producer.consumers[-1].nf_instance_id_proof == "cca"
            else:
                assert (answer.status, answer.cause) == (403, "CCA_VERIFICATION_FAILURE")
            if test["result"] != "acceptable" and accepted != (test["result"] == "valid"):
                wrongly_judged.append((test["tcId"], test["comment"]))

    print("\nWycheproof P-256 P1363 as CCAs:", dict(sorted(counts.items())))
    assert wrongly_judged == []
    assert counts["run"] >= vectors["numberOfTests"]
    assert counts["valid accepted"] > 100 and counts["invalid rejected"] > 50
