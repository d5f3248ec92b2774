"""The `sbi-setauth` command: one argparse subcommand per task, `serve` among them."""

from __future__ import annotations

import argparse
import logging
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


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_serve]
"""Functions that each add one subcommand and set its `handler` default."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand in `SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(prog="sbi-setauth")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default `sys.argv[1:]`) and return the exit status."""
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler: Handler = arguments.handler
    return handler(arguments)
