"""Runnable examples: an NRF token endpoint and UDM producers protected by the middleware.

They are small on purpose and meant to be read; `sbi-setauth demo` runs them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def lazy_app(module_name: str, factory: Callable[[], Any]) -> Callable[[str], Any]:
    """A module `__getattr__` that builds `app` with `factory` on first access, so importing the
    module needs no settings and `sbi-setauth serve module:app` reads them when it starts."""
    built: list[Any] = []

    def module_getattr(name: str) -> Any:
        if name != "app":
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        if not built:
            built.append(factory())
        return built[0]

    return module_getattr
