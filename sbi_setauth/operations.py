"""Operation scopes: which scope, beyond the service scope, an SBI operation requires.

The `OPERATION_SCOPES` file is a JSON object mapping `"METHOD /path/{template}"` to a scope,
for example `{"GET /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:read"}`. A `{name}` segment
matches exactly one non-empty path segment. Templates are compiled once, at start-up. A HEAD
request without a HEAD entry of its own needs what GET needs, since frameworks answer HEAD with
the GET handler.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["OperationScopes"]

_METHOD = re.compile(r"[A-Z]{3,7}")
_SCOPE = re.compile(r"[a-zA-Z0-9_:-]+")
_SEGMENT = re.compile(r"\{[A-Za-z_][A-Za-z0-9_-]*\}|[A-Za-z0-9._~!$&'()*+,;=:@%-]+")


class OperationScopes:
    """Looks up the operation scope of a request by method and path."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self._routes: dict[tuple[str, str], list[tuple[re.Pattern[str], str]]] = {}
        for operation, scope in mapping.items():
            method, _, template = operation.partition(" ")
            if not _METHOD.fullmatch(method) or not template.startswith("/"):
                raise ValueError(f"not 'METHOD /path': {operation!r}")
            if type(scope) is not str or not _SCOPE.fullmatch(scope):
                raise ValueError(f"not a scope: {scope!r}")
            segments = template.strip("/").split("/")
            pattern = []
            for segment in segments:
                if not _SEGMENT.fullmatch(segment):
                    raise ValueError(f"bad path segment {segment!r} in {operation!r}")
                pattern.append("[^/]+" if segment.startswith("{") else re.escape(segment))
            key = (method, segments[0])
            compiled = re.compile("/" + "/".join(pattern) + "/?")
            self._routes.setdefault(key, []).append((compiled, scope))

    @classmethod
    def from_file(cls, path: str) -> OperationScopes:
        """Load the mapping from a JSON file; raises ValueError when it is malformed."""
        try:
            mapping = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read {path}: {error}") from None
        if type(mapping) is not dict:
            raise ValueError(f"{path} is not a JSON object")
        return cls(mapping)

    def lookup(self, method: str, service: str, path: str) -> str | None:
        """Return the operation scope for the request, or None when none is configured."""
        for candidate in (method, "GET") if method == "HEAD" else (method,):
            for pattern, scope in self._routes.get((candidate, service), ()):
                if pattern.fullmatch(path):
                    return scope
        return None
