"""Serve an ASGI app over mutual TLS with HTTP/2, handing the verified client certificate chain
to the app in the ASGI TLS extension (`scope["extensions"]["tls"]`).

Hypercorn speaks HTTP/2 over TLS but does not pass the client certificate to the app. This module
adds it through the smallest reliance on Hypercorn internals that works: a subclass of
`hypercorn.asyncio.tcp_server.TCPServer` is installed as the name `TCPServer` in
`hypercorn.asyncio.run`, where `worker_serve` looks it up for each accepted connection. The
subclass reads the TLS session once per connection and wraps `self.app` (Hypercorn's app wrapper,
called as `app(scope, receive, send, sync_spawn, call_soon)`) so every HTTP and WebSocket scope of
that connection carries the extension.

A second, smaller reliance fixes how Hypercorn 0.18 treats a request body that arrives after the
app has already answered (which is what every rejection does, since the body is never read):
Hypercorn's HTTP/2 protocol looks the stream up without a guard and the `KeyError` tears down
the whole connection. A subclass of `hypercorn.protocol.h2.H2Protocol`, installed as the name
`H2Protocol` in `hypercorn.protocol`, credits such data to the connection window and drops it.
It does not reset the stream: clients such as httpx treat even `RST_STREAM(NO_ERROR)` after a
complete response as a failed request.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import os
import socket
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import h2.events
import hypercorn.asyncio.run as hypercorn_run
import hypercorn.protocol as hypercorn_protocol
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

__all__ = [
    "TESTED_HYPERCORN_VERSIONS",
    "BackgroundServer",
    "build_ssl_context",
    "import_app",
    "run",
    "serve",
]

logger = logging.getLogger(__name__)

TESTED_HYPERCORN_VERSIONS = ("0.18",)
"""Hypercorn release series whose internals this module was written against."""

StrPath = str | os.PathLike[str]
ShutdownTrigger = Callable[[], Awaitable[None]]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_HANDSHAKE_TIMEOUT = 10.0


def build_ssl_context(
    certfile: StrPath,
    keyfile: StrPath,
    ca_certs: StrPath | None,
    *,
    require_client_cert: bool = True,
) -> ssl.SSLContext:
    """Return a server context: TLS 1.2 minimum, ALPN `h2` then `http/1.1`, and client
    certificates verified against `ca_certs` (required unless `require_client_cert` is False,
    in which case a presented certificate is still verified)."""
    if require_client_cert and ca_certs is None:
        raise ValueError("ca_certs is required when client certificates are required")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_ciphers(_CIPHERS)
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.load_cert_chain(certfile=os.fspath(certfile), keyfile=os.fspath(keyfile))
    if ca_certs is not None:
        context.load_verify_locations(cafile=os.fspath(ca_certs))
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


@functools.cache
def _cipher_suite_ids() -> dict[str, int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL")
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}


def _der(certificate: bytes | Any) -> bytes:
    if isinstance(certificate, bytes):
        return certificate
    return certificate.public_bytes(getattr(ssl, "_ssl").ENCODING_DER)


def _peer_chain_der(ssl_object: ssl.SSLObject) -> list[bytes]:
    public = getattr(ssl_object, "get_verified_chain", None)
    if public is not None:
        chain = public()
    else:
        # Python < 3.13 only exposes the verified chain on the private `_sslobj`.
        private = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
        chain = private() if private is not None else None
    if chain:
        return [_der(certificate) for certificate in chain]

    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _subject_name(leaf_der: bytes) -> str | None:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(leaf_der).subject.rfc4514_string()
    except ValueError:
        return None


def _tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    # Limitation: the chain is as long as OpenSSL accepted it (its own size limits apply);
    # counting certificates against policy is left to the peer certificate check.
    chain_der = _peer_chain_der(ssl_object)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain_der],
        "client_cert_name": _subject_name(chain_der[0]) if chain_der else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_suite_ids().get(cipher[0]) if cipher else None,
    }


class _ConnectionApp:
    """Hypercorn app wrapper for one connection, adding that connection's TLS extension."""

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(
        self,
        scope: Any,
        receive: Callable,
        send: Callable,
        sync_spawn: Callable,
        call_soon: Callable,
    ) -> None:
        if scope.get("type") in ("http", "websocket"):
            tls = dict(self.tls, client_cert_chain=list(self.tls["client_cert_chain"]))
            scope.setdefault("extensions", {})["tls"] = tls
        await self.app(scope, receive, send, sync_spawn, call_soon)


class _TlsTCPServer(TCPServer):
    """Hypercorn's TCPServer, with the peer's verified chain read once per connection.

    Relies on Hypercorn internals: `TCPServer.__init__` storing `app` and `writer`, and
    `TCPServer.run` passing `self.app` to the protocol after the TLS handshake.
    """

    async def run(self) -> None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            try:
                self.app = _ConnectionApp(self.app, _tls_extension(ssl_object))
            except (ssl.SSLError, ValueError, OSError):
                logger.warning("could not read the TLS session of a connection; closing it")
                await self._close()
                return
        await super().run()


class _LateBodyH2Protocol(H2Protocol):
    """Hypercorn's HTTP/2 protocol, tolerating request data for streams it has closed.

    Relies on Hypercorn internals: `H2Protocol._handle_events(events)`, `self.streams` and
    `self.connection` (the h2 connection).
    """

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        # One event at a time: a stream comes to exist only once its RequestReceived has been
        # handled, so whether data is orphaned can be decided only in order.
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            else:
                await super()._handle_events([event])
        await self._flush()


def _install_tls_tcp_server() -> None:
    """Install the TLS-aware TCPServer into Hypercorn, or fail clearly if it cannot be."""
    try:
        version = metadata.version("hypercorn")
    except metadata.PackageNotFoundError:
        version = "unknown"
    current = getattr(hypercorn_run, "TCPServer", None)
    init_parameters = inspect.signature(TCPServer.__init__).parameters
    serve_parameters = inspect.signature(hypercorn_run.worker_serve).parameters
    if (
        current not in (TCPServer, _TlsTCPServer)
        or not {"app", "writer"} <= set(init_parameters)
        or "sockets" not in serve_parameters
        or not inspect.iscoroutinefunction(getattr(TCPServer, "run", None))
        or getattr(hypercorn_protocol, "H2Protocol", None) not in (H2Protocol, _LateBodyH2Protocol)
        or not inspect.iscoroutinefunction(getattr(H2Protocol, "_handle_events", None))
    ):
        raise RuntimeError(
            f"hypercorn {version} lacks the internals sbi_setauth.serving relies on "
            "(hypercorn.asyncio.run.TCPServer, TCPServer(app, ..., writer), "
            "worker_serve(sockets=...)); install hypercorn "
            + " or ".join(f"{series}.x" for series in TESTED_HYPERCORN_VERSIONS)
        )
    if not any(version.startswith(series + ".") for series in TESTED_HYPERCORN_VERSIONS):
        logger.warning("hypercorn %s is untested with sbi_setauth.serving", version)
    # Internal: worker_serve looks this module global up for every accepted connection.
    setattr(hypercorn_run, "TCPServer", _TlsTCPServer)
    # Internal: ProtocolWrapper looks this module global up for every HTTP/2 connection.
    setattr(hypercorn_protocol, "H2Protocol", _LateBodyH2Protocol)


class _ServingConfig(Config):
    """Hypercorn configuration that serves with a prepared SSL context."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        self.errorlog = logging.getLogger("hypercorn.error")
        self.ssl_handshake_timeout = _HANDSHAKE_TIMEOUT
        # SBI connections are long-lived; Hypercorn's default closes one after 1,000 requests,
        # failing whatever is still in flight on it.
        self.keep_alive_max_requests = 2**31

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self) -> ssl.SSLContext:
        return self._ssl_context


def _listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    app: Any,
    *,
    host: str,
    port: int,
    certfile: StrPath,
    keyfile: StrPath,
    ca_certs: StrPath | None,
    require_client_cert: bool = True,
    shutdown_trigger: ShutdownTrigger | None = None,
    ready: asyncio.Event | None = None,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Serve the ASGI `app` on `host`:`port` over mutual TLS until `shutdown_trigger` returns.

    Each HTTP and WebSocket scope gets `scope["extensions"]["tls"]`, whose `client_cert_chain`
    is the chain OpenSSL verified, as PEM, from the client certificate up to the trust anchor.

    With `port=0` the system chooses the port; `on_listening(host, port)` is told the bound
    address and `ready` is set once the socket listens (connections made from then on are
    served after the app's lifespan startup). Without a `shutdown_trigger` the server stops on
    SIGINT or SIGTERM, which needs the main thread.
    """
    _install_tls_tcp_server()
    ssl_context = build_ssl_context(
        certfile, keyfile, ca_certs, require_client_cert=require_client_cert
    )
    config = _ServingConfig(ssl_context)

    sock = _listening_socket(host, port, config.backlog)
    try:
        bound_host, bound_port = sock.getsockname()[:2]
        logger.info("serving on https://%s:%d", bound_host, bound_port)
        if on_listening is not None:
            on_listening(bound_host, bound_port)
        if ready is not None:
            ready.set()
        await hypercorn_run.worker_serve(
            wrap_app(app, config.wsgi_max_body_size, "asgi"),
            config,
            sockets=Sockets(secure_sockets=[sock], insecure_sockets=[], quic_sockets=[]),
            shutdown_trigger=shutdown_trigger,
        )
    finally:
        sock.close()


def import_app(import_string: str) -> Any:
    """Import `MODULE:ATTRIBUTE` (the attribute may be dotted) and return the object."""
    module_name, separator, attribute = import_string.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"expected MODULE:APP, got {import_string!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    target: Any = importlib.import_module(module_name)
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ValueError(f"{module_name} has no attribute {attribute!r}") from None
    return target


def run(app_or_import_string: Any, **options: Any) -> None:
    """Serve like `serve`, blocking until SIGINT or SIGTERM; the app may be `MODULE:APP`."""
    app = (
        import_app(app_or_import_string)
        if isinstance(app_or_import_string, str)
        else app_or_import_string
    )
    asyncio.run(serve(app, **options))


class BackgroundServer:
    """`serve` in a thread of its own, for tests and scripts: a context manager that starts
    the server, exposes the bound `host` and `port`, and stops it on exit."""

    def __init__(
        self,
        app: Any,
        *,
        certfile: StrPath,
        keyfile: StrPath,
        ca_certs: StrPath | None,
        host: str = "127.0.0.1",
        port: int = 0,
        require_client_cert: bool = True,
        start_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.options = {
            "host": host,
            "port": port,
            "certfile": certfile,
            "keyfile": keyfile,
            "ca_certs": ca_certs,
            "require_client_cert": require_client_cert,
        }
        self.start_timeout = start_timeout
        self.host = host
        self.port = port
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def _on_listening(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._listening.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await serve(
            self.app,
            **self.options,
            shutdown_trigger=self._stop.wait,
            on_listening=self._on_listening,
        )

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported to the starting thread
            self._error = error
        finally:
            self._listening.set()

    def start(self) -> BackgroundServer:
        """Start serving and wait until connections are accepted."""
        self._thread = threading.Thread(target=self._thread_main, name="sbi-setauth-serve")
        self._thread.daemon = True
        self._thread.start()
        if not self._listening.wait(self.start_timeout):
            raise TimeoutError("the server did not start listening in time")
        if self._error is not None:
            raise RuntimeError("the server failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, closing open connections, and wait for the thread to end."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the server did not stop in time")
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
