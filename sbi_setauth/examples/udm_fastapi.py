"""The example UDM as a FastAPI app: routes declare their operation scopes with
`Security(consumer, scopes=[...])`, on top of what `SetAuthMiddleware` verified.

Serve it with `sbi-setauth serve sbi_setauth.examples.udm_fastapi:app ...` and the same
`SBI_SETAUTH_*` variables as the Starlette example.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import FastAPI, Request, Response, Security
from fastapi.security import SecurityScopes

from ..decision import VerifiedConsumer
from ..middleware import CONSUMER_SCOPE_KEY, SetAuthMiddleware
from ..rejections import AccessTokenMissing, InsufficientScope, Rejection, render_rejection
from ..settings import Settings
from . import lazy_app
from .udm import served_to

__all__ = ["consumer", "create_app"]

_API_PATH = re.compile(r"/[A-Za-z0-9_-]{1,64}(/v[0-9]{1,3})?")


def consumer(request: Request, security_scopes: SecurityScopes) -> VerifiedConsumer:
    """The verified consumer, once it is known to hold every scope the route asks for.

    Raises `InsufficientScope` for the first missing scope; answered as the middleware would.
    """
    verified = request.scope.get(CONSUMER_SCOPE_KEY)
    if not isinstance(verified, VerifiedConsumer):
        raise AccessTokenMissing("the request was not verified by SetAuthMiddleware")
    for scope in security_scopes.scopes:
        if scope not in verified.scopes:
            raise InsufficientScope(f"the access token does not grant {scope}", scope)
    return verified


def _realm(request: Request) -> str:
    match = _API_PATH.match(request.url.path)
    return f"{request.url.scheme}://{request.url.netloc}{match.group(0) if match else ''}"


async def _answer_rejection(request: Request, rejection: Exception) -> Response:
    if not isinstance(rejection, Rejection):
        raise rejection
    status, headers, body = render_rejection(rejection, _realm(request))
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


AmDataReader = Annotated[
    VerifiedConsumer, Security(consumer, scopes=["nudm-sdm:am-data:read"])
]
AmDataWriter = Annotated[
    VerifiedConsumer, Security(consumer, scopes=["nudm-sdm:am-data:write"])
]
SmfSelectReader = Annotated[
    VerifiedConsumer, Security(consumer, scopes=["nudm-sdm:smf-select-data:read"])
]


def create_app(settings: Settings | None = None, **middleware_options: Any) -> FastAPI:
    """Return the FastAPI UDM protected by `SetAuthMiddleware` (settings from the environment
    unless given)."""
    app = FastAPI(title="Example UDM (nudm-sdm)", openapi_url=None, docs_url=None)
    app.add_exception_handler(Rejection, _answer_rejection)

    @app.get("/nudm-sdm/v2/{supi}/am-data")
    async def am_data(supi: str, reader: AmDataReader) -> dict[str, Any]:
        return {
            "gpsis": ["msisdn-358401234567"],
            "subscribedUeAmbr": {"uplink": "1 Gbps", "downlink": "2 Gbps"},
            "servedTo": served_to(reader),
        }

    @app.get("/nudm-sdm/v2/{supi}/smf-select-data")
    async def smf_select_data(supi: str, reader: SmfSelectReader) -> dict[str, Any]:
        return {
            "subscribedSnssaiInfos": {"1": {"dnnInfos": [{"dnn": "internet"}]}},
            "servedTo": served_to(reader),
        }

    @app.put("/nudm-sdm/v2/{supi}/am-data/sor-ack", status_code=204)
    async def sor_ack(supi: str, writer: AmDataWriter) -> Response:
        return Response(status_code=204)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "up"}

    app.add_middleware(
        SetAuthMiddleware, settings=settings or Settings.from_env(), **middleware_options
    )
    return app


__getattr__ = lazy_app(__name__, create_app)
