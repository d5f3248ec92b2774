"""Producer-side verification of 5G SBI access tokens, CCAs and consumer NF Sets, for ASGI."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CONSUMER_SCOPE_KEY",
    "ConsumerUser",
    "Rejection",
    "SetAuthMiddleware",
    "Settings",
    "SettingsError",
    "VerifiedConsumer",
]

__version__ = "0.1.0"

_HOMES = {
    "CONSUMER_SCOPE_KEY": "middleware",
    "ConsumerUser": "middleware",
    "SetAuthMiddleware": "middleware",
    "Rejection": "rejections",
    "Settings": "settings",
    "SettingsError": "settings",
    "VerifiedConsumer": "decision",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sbi_setauth' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
