"""The access-token checks, through the ASGI app: status, challenge, ProblemDetails, handler."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from sbi_setauth.testing import Nrf, sign_jws

from .conftest import PRODUCER_ID, Pki, Producer, bearer, build_producer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, signature: bytes = b"sig") -> str:
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        ]
    )


def assert_rejected(answer, status: int, cause: str, error: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert answer.cause == cause
    assert not answer.handler_ran
    problem = answer.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    challenge = answer.headers.get("www-authenticate")
    if error is None and status == 401:
        assert challenge is not None and challenge.startswith("Bearer realm=")
        assert "error=" not in challenge
    if error is not None:
        assert challenge is not None and f'error="{error}"' in challenge


async def test_valid_instance_token_reaches_handler(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    answer = await producer.request(headers=bearer(pki.instance_token(amf)), peer=amf)
    assert answer.status == 200 and answer.handler_ran
    consumer = producer.consumers[-1]
    assert consumer.nf_instance_id == amf.nf_instance_id
    assert consumer.nf_type == "AMF"
    assert "nudm-sdm" in consumer.scopes
    assert producer.calls[-1].auth.scopes == ["nudm-sdm"]


async def test_missing_token_is_401_without_error(pki: Pki, producer: Producer) -> None:
    answer = await producer.request(peer=pki.amf())
    assert_rejected(answer, 401, "ACCESS_TOKEN_MISSING")
    assert (
        answer.headers["www-authenticate"] == 'Bearer realm="https://udm.example.org/nudm-sdm/v2"'
    )


async def test_other_scheme_counts_as_no_token(pki: Pki, producer: Producer) -> None:
    answer = await producer.request(
        headers={"Authorization": "Basic dXNlcjpwYXNz"}, peer=pki.amf()
    )
    assert_rejected(answer, 401, "ACCESS_TOKEN_MISSING")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_bearer_scheme_is_case_insensitive(
    pki: Pki, producer: Producer, scheme: str
) -> None:
    amf = pki.amf(None)
    token = pki.instance_token(amf)
    answer = await producer.request(headers={"Authorization": f"{scheme}   {token}"}, peer=amf)
    assert answer.status == 200


async def test_two_authorization_headers_are_400(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    token = pki.instance_token(amf)
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    answer = await producer.request(headers=headers, peer=amf)
    assert_rejected(answer, 400, "INVALID_REQUEST", "invalid_request")


async def test_bearer_without_token_is_400(pki: Pki, producer: Producer) -> None:
    answer = await producer.request(headers={"Authorization": "Bearer"}, peer=pki.amf())
    assert_rejected(answer, 400, "INVALID_REQUEST", "invalid_request")


async def test_one_mebibyte_authorization_is_400(pki: Pki, producer: Producer) -> None:
    answer = await producer.request(
        headers={"Authorization": "Bearer " + "a" * 2**20}, peer=pki.amf()
    )
    assert_rejected(answer, 400, "INVALID_REQUEST", "invalid_request")


async def test_token_in_query_string_is_ignored(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    query = f"access_token={pki.instance_token(amf)}".encode()
    answer = await producer.request(peer=amf, query=query)
    assert_rejected(answer, 401, "ACCESS_TOKEN_MISSING")


def now() -> int:
    return int(time.time())


CLAIM_FAILURES = {
    "expired": {"exp": now() - 120, "iat": now() - 720},
    "not yet valid": {"nbf": now() + 600},
    "issued in the future": {"iat": now() + 600, "exp": now() + 1200},
    "no exp": {"exp": None},
    "exp as string": {"exp": str(now() + 600)},
    "exp as float": {"exp": now() + 600.5},
    "exp as list": {"exp": [now() + 600]},
    "exp as bool": {"exp": True},
    "huge exp": {"exp": 10**30},
    "no iss": {"iss": None},
    "other iss": {"iss": "6f1e0c52-0a3a-4c0e-9a4f-3b7a1d1e2f00"},
    "iss as list": {"iss": ["x"]},
    "no sub": {"sub": None},
    "sub not uuid": {"sub": "amf-1"},
    "no aud": {"aud": None},
    "aud other type": {"aud": "SMF"},
    "aud lower case type": {"aud": "udm"},
    "aud list of types": {"aud": ["UDM"]},
    "aud list of other instances": {"aud": ["6f1e0c52-0a3a-4c0e-9a4f-3b7a1d1e2f00"]},
    "aud empty list": {"aud": []},
    "aud object": {"aud": {"UDM": True}},
    "aud list with number": {"aud": [PRODUCER_ID, 5]},
    "no scope": {"scope": None},
    "scope bad chars": {"scope": "nudm-sdm  nudm-uecm"},
    "scope as list": {"scope": ["nudm-sdm"]},
    "producerNfSetId without setting": {"producerNfSetId": "set1.udmset.5gc.mnc001.mcc001"},
    "producerPlmnId without setting": {"producerPlmnId": {"mcc": "001", "mnc": "01"}},
    "producerSnssaiList without setting": {"producerSnssaiList": [{"sst": 1}]},
    "malformed set claim": {"consumerNfSetId": "set1.amfset.5gc.mnc01.mcc001"},
    "set claim as number": {"consumerNfSetId": 7},
    "jti with spaces": {"jti": "a b"},
}


@pytest.mark.parametrize("claims", CLAIM_FAILURES.values(), ids=CLAIM_FAILURES.keys())
async def test_claim_failure_is_invalid_token(pki: Pki, producer: Producer, claims: dict) -> None:
    amf = pki.amf(None)
    answer = await producer.request(
        headers=bearer(pki.instance_token(amf, claims=claims)), peer=amf
    )
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_issuer_that_is_a_prefix_of_an_allowed_one_is_rejected(pki: Pki) -> None:
    producer = build_producer(pki.settings())
    amf = pki.amf(None)
    prefix = pki.nrf.nrf_instance_id[:-1]
    answer = await producer.request(
        headers=bearer(pki.instance_token(amf, claims={"iss": prefix})), peer=amf
    )
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_audience_naming_own_instance_is_accepted(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    token = pki.instance_token(
        amf, aud=["6f1e0c52-0a3a-4c0e-9a4f-3b7a1d1e2f00", PRODUCER_ID.upper()]
    )
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert answer.status == 200


async def test_expiry_within_clock_skew_is_accepted(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    token = pki.instance_token(amf, iat=now() - 600, exp=now() - 10)
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert answer.status == 200


async def test_cached_token_expires_on_a_later_request(pki: Pki) -> None:
    clock = [time.time()]
    producer = build_producer(pki.settings(), clock=lambda: clock[0])
    amf = pki.amf(None)
    token = pki.instance_token(amf, lifetime=60)
    assert (await producer.request(headers=bearer(token), peer=amf)).status == 200
    clock[0] += 120
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_producer_claims_checked_against_settings(pki: Pki) -> None:
    producer = build_producer(
        pki.settings(
            nf_set_id="set9.udmset.5gc.mnc001.mcc001", plmn_ids="001-01", snssais="1,2-00000a"
        )
    )
    amf = pki.amf(None)
    good = {
        "producerNfSetId": "SET9.udmset.5gc.mnc001.mcc001",
        "producerPlmnId": {"mcc": "001", "mnc": "01"},
        "producerSnssaiList": [{"sst": 3}, {"sst": 2, "sd": "00000A"}],
    }
    answer = await producer.request(headers=bearer(pki.instance_token(amf, claims=good)), peer=amf)
    assert answer.status == 200
    for bad in (
        {"producerNfSetId": "set8.udmset.5gc.mnc001.mcc001"},
        {"producerPlmnId": {"mcc": "001", "mnc": "02"}},
        {"producerPlmnId": {"mcc": 1, "mnc": "01"}},
        {"producerSnssaiList": [{"sst": 2}]},
        {"producerSnssaiList": [{"sst": "1"}]},
        {"producerSnssaiList": []},
    ):
        answer = await producer.request(
            headers=bearer(pki.instance_token(amf, claims=bad)), peer=amf
        )
        assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_missing_service_scope_is_403_with_scope(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    answer = await producer.request(
        "/nudm-uecm/v1/imsi-001010000000001/registrations",
        headers=bearer(pki.instance_token(amf, scope="nudm-sdm")),
        peer=amf,
    )
    assert_rejected(answer, 403, "INSUFFICIENT_SCOPE", "insufficient_scope")
    assert 'scope="nudm-uecm"' in answer.headers["www-authenticate"]


async def test_service_not_served_is_insufficient_scope(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    answer = await producer.request(
        "/nudm-ee/v1/imsi-1", headers=bearer(pki.instance_token(amf, scope="nudm-ee")), peer=amf
    )
    assert_rejected(answer, 403, "INSUFFICIENT_SCOPE", "insufficient_scope")
    assert 'scope="nudm-ee"' in answer.headers["www-authenticate"]


async def test_operation_scope_from_file(pki: Pki) -> None:
    scopes = pki.directory / "scopes.json"
    scopes.write_text(json.dumps({"PUT /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:write"}))
    producer = build_producer(pki.settings(operation_scopes=str(scopes)))
    amf = pki.amf(None)
    plain = pki.instance_token(amf, scope="nudm-sdm")
    assert (await producer.request(headers=bearer(plain), peer=amf)).status == 200
    answer = await producer.request(method="PUT", headers=bearer(plain), peer=amf)
    assert_rejected(answer, 403, "INSUFFICIENT_SCOPE", "insufficient_scope")
    assert 'scope="nudm-sdm:am-data:write"' in answer.headers["www-authenticate"]
    both = pki.instance_token(amf, scope="nudm-sdm nudm-sdm:am-data:write")
    assert (await producer.request(method="PUT", headers=bearer(both), peer=amf)).status == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_in_any_spelling_is_rejected(
    pki: Pki, producer: Producer, alg: str
) -> None:
    amf = pki.amf(None)
    token = pki.instance_token(amf)
    header, payload, _ = token.split(".")
    forged = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + payload + "."
    for candidate in (forged, forged + "AAAA"):
        answer = await producer.request(headers=bearer(candidate), peer=amf)
        assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


def public_key_forms(nrf: Nrf) -> dict[str, bytes]:
    key = nrf.public_key
    return {
        "pem": nrf.public_key_pem,
        "der": key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(nrf.jwks()["keys"][0]).encode(),
    }


@pytest.mark.parametrize("form", ["pem", "der", "jwk"])
async def test_hs256_signed_with_the_nrf_public_key_is_rejected(pki: Pki, form: str) -> None:
    import hashlib
    import hmac

    producer = build_producer(pki.settings(token_algorithms="ES256,RS256"))
    amf = pki.amf(None)
    payload = json.loads(base64.urlsafe_b64decode(pki.instance_token(amf).split(".")[1] + "=="))
    secret = public_key_forms(pki.nrf)[form]
    signing_input = (
        b64url(json.dumps({"alg": "HS256", "kid": pki.nrf.kid}).encode())
        + "."
        + b64url(json.dumps(payload).encode())
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    answer = await producer.request(headers=bearer(signing_input + "." + b64url(mac)), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


@pytest.mark.parametrize(
    "extra_header",
    [
        {"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}},
        {"jku": "https://127.0.0.1:1/jwks"},
        {"x5u": "https://127.0.0.1:1/cert.pem"},
        {"crit": ["exp"]},
        {"crit": ["b64"], "b64": False},
        {"typ": "at+jwt+other"},
        {"kid": "unknown-key"},
        {"kid": "../../../../etc/passwd"},
        {"kid": "x' OR '1'='1"},
        {"kid": ["nrf-key-1"]},
    ],
    ids=[
        "jwk",
        "jku",
        "x5u",
        "crit",
        "b64-false",
        "typ",
        "unknown-kid",
        "kid-path",
        "kid-sql",
        "kid-list",
    ],
)
async def test_hostile_token_headers_are_rejected(pki: Pki, extra_header: dict) -> None:
    producer = build_producer(pki.settings())
    amf = pki.amf(None)
    token = pki.instance_token(amf, header=extra_header)
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_algorithm_not_configured_is_rejected(pki: Pki) -> None:
    producer = build_producer(pki.settings(token_algorithms="RS256"))
    amf = pki.amf(None)
    answer = await producer.request(headers=bearer(pki.instance_token(amf)), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "=",
        lambda t: t.replace(".", "=.", 1),
        lambda t: t[:10] + "+" + t[11:],
        lambda t: t[:10] + "/" + t[11:],
        lambda t: "." + t.split(".", 1)[1],
        lambda t: t.rsplit(".", 1)[0] + ".",
        lambda t: t + ".extra",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: "..",
        lambda t: t.replace(".", "..", 1),
    ],
    ids=[
        "pad-end",
        "pad-header",
        "plus",
        "slash",
        "empty-header",
        "empty-signature",
        "four-segments",
        "two-segments",
        "only-dots",
        "empty-middle",
    ],
)
async def test_malformed_compact_syntax_is_rejected(pki: Pki, producer: Producer, mangle) -> None:
    amf = pki.amf(None)
    answer = await producer.request(headers=bearer(mangle(pki.instance_token(amf))), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_deeply_nested_claims_are_rejected(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    nested = b'{"a":' * 40 + b"1" + b"}" * 40
    token = sign_jws(nested, pki.nrf.private_key, header={"kid": pki.nrf.kid})
    assert len(token) < 8192
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")
    assert "nested" in answer.json()["detail"]


async def test_duplicate_claim_names_are_rejected(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    good = json.loads(base64.urlsafe_b64decode(pki.instance_token(amf).split(".")[1] + "=="))
    body = json.dumps(good)[:-1] + ', "sub": "' + amf.nf_instance_id + '"}'
    token = sign_jws(body.encode(), pki.nrf.private_key, header={"kid": pki.nrf.kid})
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_token_signed_by_another_nrf_key_is_rejected(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    impostor = Nrf(pki.nrf.nrf_instance_id, kid=pki.nrf.kid)
    token = impostor.access_token(sub=amf.nf_instance_id, aud="UDM", scope="nudm-sdm")
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_exempt_path_needs_no_token(pki: Pki, producer: Producer) -> None:
    answer = await producer.request("/health")
    assert answer.status == 200 and answer.handler_ran
    for path in ("/health/../nudm-sdm/v2/x/am-data", "/health/./x", "/healthz", "/health//x"):
        answer = await producer.request(path)
        assert_rejected(answer, 401, "ACCESS_TOKEN_MISSING")
    assert (await producer.request("/health/live")).cause is None


async def test_lifespan_passes_through(pki: Pki) -> None:
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    from sbi_setauth import SetAuthMiddleware

    middleware = SetAuthMiddleware(app, settings=pki.settings())
    await middleware({"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]


async def test_problem_details_never_echo_the_token(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    token = pki.instance_token(amf, claims={"exp": now() - 3600, "iat": now() - 4000})
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert answer.status == 401
    assert token.split(".")[1] not in answer.body.decode()
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["cache-control"] == "no-store"


async def test_key_added_to_the_key_file_is_honoured(pki: Pki, producer: Producer) -> None:
    amf = pki.amf(None)
    rotated = Nrf(pki.nrf.nrf_instance_id, kid="nrf-key-2")
    keys = pki.nrf.jwks()["keys"] + rotated.jwks()["keys"]
    pki.jwks_path.write_text(json.dumps({"keys": keys}))
    token = rotated.access_token(sub=amf.nf_instance_id, aud="UDM", scope="nudm-sdm")
    answer = await producer.request(headers=bearer(token), peer=amf)
    assert answer.status == 200


def test_cached_token_is_dropped_when_its_key_leaves_the_key_file(pki: Pki) -> None:
    from sbi_setauth.keys import NrfKeys
    from sbi_setauth.rejections import AccessTokenInvalid
    from sbi_setauth.tokens import AccessTokenVerifier

    ticks = [0.0]
    keys = NrfKeys.from_files([pki.jwks_path], clock=lambda: ticks[0])
    verifier = AccessTokenVerifier(pki.settings(), keys)
    amf = pki.amf(None)
    token = pki.instance_token(amf)
    assert verifier.verify(token).sub == amf.nf_instance_id

    Nrf(pki.nrf.nrf_instance_id, kid="nrf-key-2").write_jwks(pki.jwks_path)
    ticks[0] += 31
    with pytest.raises(AccessTokenInvalid):
        verifier.verify(token)


async def test_websocket_without_token_is_closed_before_the_app(pki: Pki) -> None:
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    from sbi_setauth import SetAuthMiddleware

    middleware = SetAuthMiddleware(app, settings=pki.settings())
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/nudm-sdm/v2/x", "headers": [], "client": None}
    await middleware(scope, None, send)
    assert seen == []
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_head_needs_the_operation_scope_of_get(pki: Pki) -> None:
    scopes = pki.directory / "scopes.json"
    scopes.write_text(json.dumps({"GET /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:read"}))
    producer = build_producer(pki.settings(operation_scopes=str(scopes)))
    amf = pki.amf(None)
    plain = pki.instance_token(amf, scope="nudm-sdm")
    for method in ("GET", "HEAD"):
        answer = await producer.request(method=method, headers=bearer(plain), peer=amf)
        assert_rejected(answer, 403, "INSUFFICIENT_SCOPE", "insufficient_scope")
    granted = pki.instance_token(amf, scope="nudm-sdm nudm-sdm:am-data:read")
    assert (await producer.request(method="HEAD", headers=bearer(granted), peer=amf)).status == 200


async def test_single_pem_key_verifies_tokens_whatever_their_kid(pki: Pki) -> None:
    pem = pki.directory / "nrf.pem"
    pem.write_bytes(pki.nrf.public_key_pem)
    producer = build_producer(pki.settings(nrf_keys=str(pem)))
    amf = pki.amf(None)
    answer = await producer.request(headers=bearer(pki.instance_token(amf)), peer=amf)
    assert answer.status == 200
    impostor = Nrf(pki.nrf.nrf_instance_id, kid=pki.nrf.kid)
    forged = impostor.access_token(sub=amf.nf_instance_id, aud="UDM", scope="nudm-sdm")
    answer = await producer.request(headers=bearer(forged), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_clock_skew_setting_bounds_the_leeway(pki: Pki) -> None:
    strict = build_producer(pki.settings(clock_skew=0))
    amf = pki.amf(None)
    token = pki.instance_token(amf, iat=now() - 600, exp=now() - 10)
    answer = await strict.request(headers=bearer(token), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")
    future = pki.instance_token(amf, iat=now() + 10)
    answer = await strict.request(headers=bearer(future), peer=amf)
    assert_rejected(answer, 401, "ACCESS_TOKEN_INVALID", "invalid_token")


async def test_rejection_is_logged_once_with_cause_path_and_consumer(
    pki: Pki, producer: Producer, caplog: pytest.LogCaptureFixture
) -> None:
    amf, other = pki.amf(None), pki.amf(None)
    token = pki.instance_token(other)
    with caplog.at_level("INFO", logger="sbi_setauth.middleware"):
        await producer.request(headers=bearer(token), peer=amf)
    lines = [r for r in caplog.records if r.name == "sbi_setauth.middleware"]
    assert len(lines) == 1 and lines[0].levelname == "INFO"
    message = lines[0].getMessage()
    assert "PEER_CERTIFICATE_INVALID" in message and "/nudm-sdm/v2/" in message
    assert amf.nf_instance_id in message
    assert token.split(".")[1] not in message and token.split(".")[2] not in message


async def test_accepted_request_is_logged_at_debug_only(
    pki: Pki, producer: Producer, caplog: pytest.LogCaptureFixture
) -> None:
    amf = pki.amf(None)
    with caplog.at_level("DEBUG", logger="sbi_setauth.middleware"):
        assert (
            await producer.request(headers=bearer(pki.instance_token(amf)), peer=amf)
        ).status == 200
    levels = {r.levelname for r in caplog.records if r.name == "sbi_setauth.middleware"}
    assert levels == {"DEBUG"}


async def test_starlette_requires_and_request_user_see_the_consumer(pki: Pki) -> None:
    from starlette.applications import Starlette
    from starlette.authentication import requires
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sbi_setauth import SetAuthMiddleware
    from sbi_setauth.testing import asgi_request

    @requires("nudm-sdm:am-data:write")
    async def write(request: Request) -> JSONResponse:
        return JSONResponse(
            {"user": request.user.display_name, "ok": request.user.is_authenticated}
        )

    app = Starlette(routes=[Route("/nudm-sdm/v2/{supi}/am-data", write)])
    app.add_middleware(SetAuthMiddleware, settings=pki.settings())
    amf = pki.amf(None)
    path = "/nudm-sdm/v2/imsi-1/am-data"
    narrow = pki.instance_token(amf, scope="nudm-sdm")
    assert (await asgi_request(app, path, headers=bearer(narrow), peer=amf)).status == 403
    wide = pki.instance_token(amf, scope="nudm-sdm nudm-sdm:am-data:write")
    answer = await asgi_request(app, path, headers=bearer(wide), peer=amf)
    assert answer.status == 200
    assert answer.json() == {"user": amf.nf_instance_id, "ok": True}


async def test_accepted_websocket_reaches_the_app_with_the_consumer(pki: Pki) -> None:
    from sbi_setauth import CONSUMER_SCOPE_KEY, SetAuthMiddleware

    seen = []

    async def app(scope, receive, send):
        seen.append(scope[CONSUMER_SCOPE_KEY].nf_instance_id)

    middleware = SetAuthMiddleware(app, settings=pki.settings())
    amf = pki.amf(None)
    scope = {
        "type": "websocket",
        "path": "/nudm-sdm/v2/x",
        "headers": [(b"authorization", f"Bearer {pki.instance_token(amf)}".encode())],
        "client": ("127.0.0.1", 1),
        "extensions": {"tls": {"client_cert_chain": amf.chain_pem}},
    }
    await middleware(scope, None, None)
    assert seen == [amf.nf_instance_id]
