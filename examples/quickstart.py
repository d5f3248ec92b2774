"""A producer protected by sbi_setauth, run in-process: prints accepted and rejected requests.

Run it with `python examples/quickstart.py`. Everything (operator CA, NRF key, certificates) is
made on the spot with `sbi_setauth.testing`, whose `asgi_request` calls the app as a TLS server
would, with the consumer's certificate in the ASGI TLS extension.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sbi_setauth import SetAuthMiddleware, Settings
from sbi_setauth.testing import CA, Nrf, asgi_request

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"


async def am_data(request: Request) -> JSONResponse:
    consumer = request.state.consumer
    return JSONResponse({"supi": request.path_params["supi"], "servedTo": consumer.nf_instance_id})


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sbi-setauth-"))
    ca, nrf = CA(), Nrf()
    settings = Settings(
        nf_type="UDM",
        nf_instance_id="9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1",
        services=["nudm-sdm"],
        nrf_issuers=[nrf.nrf_instance_id],
        nrf_keys=[str(nrf.write_jwks(folder / "nrf.jwks"))],
        trust_anchors=[str(ca.write_pem(folder / "ca.pem"))],
    )
    app = Starlette(routes=[Route("/nudm-sdm/v2/{supi}/am-data", am_data)])
    app.add_middleware(SetAuthMiddleware, settings=settings)

    amf1 = ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    amf2 = ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    stranger = ca.issue_nf_certificate(nf_type="AMF", nf_set_id="set2.amfset.5gc.mnc001.mcc001")
    set_token = nrf.access_token(
        sub=amf1.nf_instance_id, aud="UDM", scope="nudm-sdm", nf_set_id=AMF_SET
    )
    binding = f"bl=nf-set; nfset={AMF_SET}"

    cases = [
        ("set token, first instance of the set", amf1, set_token, binding),
        ("set token, no NF Set ID in the request", amf1, set_token, None),
        ("set token, another set's instance", stranger, set_token, binding),
        ("set token, second instance while the first holds it", amf2, set_token, binding),
        ("no access token", amf1, None, None),
    ]
    for title, peer, token, set_header in cases:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if set_header:
            headers["3gpp-Sbi-Binding"] = set_header
        answer = await asgi_request(
            app, "/nudm-sdm/v2/imsi-001010000000001/am-data", headers=headers, peer=peer
        )
        print(f"{answer.status}  {answer.cause or 'accepted':<22} {title}")


if __name__ == "__main__":
    asyncio.run(main())
