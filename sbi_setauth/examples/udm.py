"""An example UDM producer: a small `nudm-sdm` API behind `SetAuthMiddleware`, configured only
through `SBI_SETAUTH_*` environment variables.

Serve it with `sbi-setauth serve sbi_setauth.examples.udm:app --certfile ... --keyfile ...
--ca-certs ...`; the app is built on first access to `app`, so importing the module needs no
configuration.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..decision import VerifiedConsumer
from ..middleware import SetAuthMiddleware
from ..settings import Settings
from . import lazy_app

__all__ = ["create_app", "served_to"]

MAX_SUPI_LENGTH = 64


def served_to(consumer: VerifiedConsumer) -> dict[str, Any]:
    """What the producer tells the consumer about who it served (for demonstration)."""
    return {
        "nfInstanceId": consumer.nf_instance_id,
        "nfSetId": consumer.nf_set_id,
        "nfType": consumer.nf_type,
        "setToken": consumer.set_token,
        "viaScp": consumer.via_scp,
        "instanceProvenBy": consumer.nf_instance_id_proof,
        "setProvenBy": list(consumer.nf_set_id_proofs),
    }


def _supi(request: Request) -> str | None:
    supi = request.path_params["supi"]
    return supi if len(supi) <= MAX_SUPI_LENGTH else None


def _not_found() -> JSONResponse:
    problem = {"status": 404, "cause": "USER_NOT_FOUND", "title": "Not found"}
    return JSONResponse(problem, status_code=404, media_type="application/problem+json")


async def am_data(request: Request) -> JSONResponse:
    """Access and mobility subscription data of a subscriber."""
    supi = _supi(request)
    if supi is None:
        return _not_found()
    return JSONResponse(
        {
            "gpsis": ["msisdn-358401234567"],
            "subscribedUeAmbr": {"uplink": "1 Gbps", "downlink": "2 Gbps"},
            "nssai": {"defaultSingleNssais": [{"sst": 1}]},
            "servedTo": served_to(request.state.consumer),
        }
    )


async def smf_select_data(request: Request) -> JSONResponse:
    """SMF selection subscription data of a subscriber."""
    if _supi(request) is None:
        return _not_found()
    return JSONResponse(
        {
            "subscribedSnssaiInfos": {"1": {"dnnInfos": [{"dnn": "internet"}]}},
            "servedTo": served_to(request.state.consumer),
        }
    )


async def sor_ack(request: Request) -> Response:
    """Acknowledgement of Steering of Roaming information by the UE."""
    if _supi(request) is None:
        return _not_found()
    return Response(status_code=204)


async def health(request: Request) -> JSONResponse:
    """Liveness; exempt from authorization through `SBI_SETAUTH_EXEMPT_PATHS=/health`."""
    return JSONResponse({"status": "up"})


def create_app(settings: Settings | None = None, **middleware_options: Any) -> Starlette:
    """Return the UDM app protected by `SetAuthMiddleware` (settings from the environment
    unless given)."""
    app = Starlette(
        routes=[
            Route("/nudm-sdm/v2/{supi}/am-data", am_data, methods=["GET"]),
            Route("/nudm-sdm/v2/{supi}/smf-select-data", smf_select_data, methods=["GET"]),
            Route("/nudm-sdm/v2/{supi}/am-data/sor-ack", sor_ack, methods=["PUT"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.add_middleware(
        SetAuthMiddleware, settings=settings or Settings.from_env(), **middleware_options
    )
    return app


__getattr__ = lazy_app(__name__, create_app)
