"""The `sbi-setauth` command: one argparse subcommand per task, `serve` among them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve an ASGI app over mutual TLS with HTTP/2",
        description="Serve MODULE:APP over TLS, requiring client certificates verified against "
        "--ca-certs; the verified chain reaches the app in scope['extensions']['tls'].",
    )
    parser.add_argument("app", metavar="MODULE:APP", help="import string of the ASGI app")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8443, help="port to bind; 0 lets the system choose"
    )
    parser.add_argument("--certfile", required=True, help="PEM server certificate (chain)")
    parser.add_argument("--keyfile", required=True, help="PEM private key of the server")
    parser.add_argument("--ca-certs", required=True, help="PEM CA bundle for client certificates")
    parser.set_defaults(handler=_serve)


def _serve(arguments: argparse.Namespace) -> int:
    from sbi_setauth import serving

    if not 0 <= arguments.port <= 65535:
        print(f"sbi-setauth serve: port out of range: {arguments.port}", file=sys.stderr)
        return 2
    try:
        app = serving.import_app(arguments.app)
    except (ImportError, ValueError) as error:
        print(f"sbi-setauth serve: cannot load {arguments.app}: {error}", file=sys.stderr)
        return 2

    try:
        serving.run(
            app,
            host=arguments.host,
            port=arguments.port,
            certfile=arguments.certfile,
            keyfile=arguments.keyfile,
            ca_certs=arguments.ca_certs,
        )
    except (OSError, ValueError, RuntimeError) as error:
        print(f"sbi-setauth serve: {error}", file=sys.stderr)
        return 1
    return 0


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the NF Set flow end to end on 127.0.0.1",
        description="Start an NRF, a UDM producer and an SCP on 127.0.0.1 with mutual TLS and "
        "HTTP/2, run one scenario per decision the middleware makes, and print a table of "
        "expected and actual results. Exits 1 if any result differs.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show settings and each answer's detail"
    )
    parser.set_defaults(handler=_demo)


def _demo(arguments: argparse.Namespace) -> int:
    from sbi_setauth.demo import run_demo

    return run_demo(verbose=arguments.verbose)


def _add_inspect(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what credentials contain and what the producer would decide",
        description="Decode an access token, a CCA and a peer certificate chain, verify them "
        "with the producer's SBI_SETAUTH_* settings (from the environment and --env-file), and "
        "print the middleware's decision for a request carrying them. Exits 0 when accepted, "
        "1 when rejected, 2 when no decision could be made.",
    )
    parser.add_argument("--token", metavar="FILE", help="access token file, or - for stdin")
    parser.add_argument("--cca", metavar="FILE", help="CCA file, or - for stdin")
    parser.add_argument("--cert", metavar="FILE", help="peer certificate chain (PEM)")
    parser.add_argument("--env-file", metavar="FILE", help="SBI_SETAUTH_* NAME=VALUE lines")
    parser.add_argument("--method", default="GET", help="request method (default GET)")
    parser.add_argument("--path", help="request path (default /<first service>/v1/)")
    parser.add_argument(
        "--set-header",
        metavar="VALUE",
        help="value of the set header; for 3gpp-Sbi-Binding a bare NF Set ID is accepted",
    )
    parser.set_defaults(handler=_inspect)


def _read_input(name: str, path: str | None, limit: int) -> bytes | None:
    if path is None:
        return None
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{name} is larger than {limit} bytes")
    return data


def _inspect(arguments: argparse.Namespace) -> int:
    from sbi_setauth import inspection

    if [arguments.token, arguments.cca].count("-") > 1:
        print("sbi-setauth inspect: only one of --token and --cca can read stdin", file=sys.stderr)
        return 2
    try:
        token = _read_input("--token", arguments.token, inspection.MAX_INPUT_SIZE)
        cca = _read_input("--cca", arguments.cca, inspection.MAX_INPUT_SIZE)
        cert = _read_input("--cert", arguments.cert, inspection.MAX_INPUT_SIZE)
    except (OSError, ValueError) as error:
        print(f"sbi-setauth inspect: {error}", file=sys.stderr)
        return 2
    if token is None and cca is None and cert is None:
        print("sbi-setauth inspect: give --token, --cca and/or --cert", file=sys.stderr)
        return 2

    settings, problem = inspection.settings_from(os.environ, arguments.env_file)
    report = inspection.inspect_credentials(
        settings=settings,
        settings_problem=problem,
        access_token=token.decode("latin-1").strip() if token is not None else None,
        cca=cca.decode("latin-1").strip() if cca is not None else None,
        peer_certificate_pem=cert,
        method=arguments.method,
        path=arguments.path,
        set_header=arguments.set_header,
    )
    print(report)
    return report.exit_code


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_serve,
    _add_demo,
    _add_inspect,
]
"""Functions that each add one subcommand and set its `handler` default."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand in `SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(prog="sbi-setauth")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO for serve, WARNING otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default `sys.argv[1:]`) and return the exit status."""
    arguments = build_parser().parse_args(argv)
    level = arguments.log_level or ("INFO" if arguments.command == "serve" else "WARNING")
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler: Handler = arguments.handler
    return handler(arguments)
