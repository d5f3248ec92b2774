"""The producer's configuration: a typed, immutable object built in code or from the environment.

Every value is checked when the object is built; a bad one raises `SettingsError` naming the
`SBI_SETAUTH_*` variable, so a misconfigured producer never starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .identifiers import IdentifierError, normalize_nf_instance_id, normalize_nf_set_id

__all__ = ["Settings", "SettingsError", "ENV_PREFIX"]

ENV_PREFIX = "SBI_SETAUTH_"

KNOWN_TOKEN_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
PEER_CERT_SOURCES = ("tls", "xfcc", "client-cert", "none")
MAX_HOLDER_LEASE = 86400.0
STORE_FAILURE_MODES = ("closed", "open")

_NF_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_SCOPE_TOKEN = re.compile(r"[A-Za-z0-9_:-]+")
_MCC = re.compile(r"[0-9]{3}")
_MNC = re.compile(r"[0-9]{2,3}")
_SST_SD = re.compile(r"([0-9]{1,3})(?:-([0-9A-Fa-f]{6}))?")
_CLAIM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


class SettingsError(ValueError):
    """A setting is missing or has a value the producer cannot run with."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{ENV_PREFIX}{name}: {problem}")
        self.name = name


def _split(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(item.strip() for item in value if item and item.strip())


def _as_bool(name: str, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise SettingsError(name, f"expected true or false, got {value!r}")


def _as_number(name: str, value: float | int | str, *, minimum: float, integer: bool) -> Any:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise SettingsError(name, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not number >= minimum or number != number:
        raise SettingsError(name, f"must be at least {minimum}, got {value!r}")
    return number


def _readable_files(name: str, paths: tuple[str, ...]) -> tuple[str, ...]:
    for path in paths:
        if not os.access(path, os.R_OK) or not Path(path).is_file():
            raise SettingsError(name, f"cannot read file {path!r}")
    return paths


def _choice(name: str, value: str, allowed: Sequence[str]) -> Any:
    lowered = value.strip().lower()
    if lowered not in allowed:
        raise SettingsError(name, f"must be one of {', '.join(allowed)}, got {value!r}")
    return lowered


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the middleware needs to know about the producer it protects.

    Build it in code with keyword arguments (lists or comma-separated strings both work for the
    list settings), or with `Settings.from_env()` from `SBI_SETAUTH_<NAME>` variables.
    """

    nf_type: str
    nf_instance_id: str
    services: tuple[str, ...]
    nrf_issuers: tuple[str, ...]
    nrf_keys: tuple[str, ...]
    nf_set_id: str | None = None
    plmn_ids: tuple[tuple[str, str], ...] = ()
    snssais: tuple[tuple[int, str | None], ...] = ()
    token_algorithms: tuple[str, ...] = ("ES256", "RS256")
    trust_anchors: tuple[str, ...] = ()
    clock_skew: int = 30
    cca_max_age: int = 300
    require_cca: bool = False
    peer_cert: Literal["tls", "xfcc", "client-cert", "none"] = "tls"
    trusted_proxies: tuple[str, ...] = ()
    trusted_scps: tuple[str, ...] = ()
    set_claim: str = "consumerNfSetId"
    set_header: str = "3gpp-Sbi-Binding"
    require_set_proof: bool = True
    operation_scopes: str | None = None
    exempt_paths: tuple[str, ...] = ()
    exclusive_use: bool = True
    holder_store: str = "memory"
    holder_lease: float = 30.0
    store_failure: Literal["closed", "open"] = "closed"
    revocation_lists: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        nf_type = str(self.nf_type or "").strip().upper()
        if not _NF_TYPE.fullmatch(nf_type):
            raise SettingsError("NF_TYPE", f"not an NF type: {self.nf_type!r}")
        fix("nf_type", nf_type)
        fix("nf_instance_id", _instance_id("NF_INSTANCE_ID", self.nf_instance_id))
        if self.nf_set_id is not None:
            try:
                fix("nf_set_id", normalize_nf_set_id(str(self.nf_set_id).strip()))
            except IdentifierError as error:
                raise SettingsError("NF_SET_ID", str(error)) from None

        services = _split(self.services)
        if not services:
            raise SettingsError("SERVICES", "at least one service name is required")
        for service in services:
            if not _SERVICE_NAME.fullmatch(service):
                raise SettingsError("SERVICES", f"not a service name: {service!r}")
        fix("services", services)

        issuers = tuple(_instance_id("NRF_ISSUERS", issuer) for issuer in _split(self.nrf_issuers))
        if not issuers:
            raise SettingsError("NRF_ISSUERS", "at least one NRF instance ID is required")
        fix("nrf_issuers", issuers)

        nrf_keys = _split(self.nrf_keys)
        if not nrf_keys:
            raise SettingsError("NRF_KEYS", "at least one key file is required")
        fix("nrf_keys", _readable_files("NRF_KEYS", nrf_keys))

        fix("plmn_ids", tuple(_plmn_id(item) for item in _split_items(self.plmn_ids)))
        fix("snssais", tuple(_snssai(item) for item in _split_items(self.snssais)))

        algorithms = _split(self.token_algorithms)
        if not algorithms:
            raise SettingsError("TOKEN_ALGORITHMS", "at least one algorithm is required")
        for algorithm in algorithms:
            if algorithm not in KNOWN_TOKEN_ALGORITHMS:
                raise SettingsError(
                    "TOKEN_ALGORITHMS",
                    f"unknown or unsafe algorithm {algorithm!r}; use asymmetric JWS algorithms",
                )
        fix("token_algorithms", algorithms)

        fix("trust_anchors", _readable_files("TRUST_ANCHORS", _split(self.trust_anchors)))
        fix("revocation_lists", _readable_files("REVOCATION_LISTS", _split(self.revocation_lists)))
        fix("clock_skew", _as_number("CLOCK_SKEW", self.clock_skew, minimum=0, integer=True))
        fix("cca_max_age", _as_number("CCA_MAX_AGE", self.cca_max_age, minimum=1, integer=True))
        fix("require_cca", _as_bool("REQUIRE_CCA", self.require_cca))
        fix("peer_cert", _choice("PEER_CERT", str(self.peer_cert), PEER_CERT_SOURCES))
        fix("trusted_proxies", _split(self.trusted_proxies))
        fix(
            "trusted_scps",
            tuple(_instance_id("TRUSTED_SCPS", scp) for scp in _split(self.trusted_scps)),
        )

        if not _CLAIM_NAME.fullmatch(str(self.set_claim)):
            raise SettingsError("SET_CLAIM", f"not a claim name: {self.set_claim!r}")
        if not _HEADER_NAME.fullmatch(str(self.set_header)):
            raise SettingsError("SET_HEADER", f"not a header name: {self.set_header!r}")
        fix("set_header", str(self.set_header).lower())
        fix("require_set_proof", _as_bool("REQUIRE_SET_PROOF", self.require_set_proof))

        if self.operation_scopes is not None:
            _readable_files("OPERATION_SCOPES", (str(self.operation_scopes),))
            fix("operation_scopes", str(self.operation_scopes))

        exempt_paths = _split(self.exempt_paths)
        for prefix in exempt_paths:
            if not prefix.startswith("/") or "/." in prefix:
                raise SettingsError("EXEMPT_PATHS", f"not an absolute path prefix: {prefix!r}")
        fix("exempt_paths", tuple(prefix.rstrip("/") or "/" for prefix in exempt_paths))

        fix("exclusive_use", _as_bool("EXCLUSIVE_USE", self.exclusive_use))
        store = str(self.holder_store).strip()
        if store != "memory" and not store.startswith(("redis://", "rediss://")):
            raise SettingsError(
                "HOLDER_STORE", f"expected memory or a redis:// URL, got {store!r}"
            )
        fix("holder_store", store)
        holder_lease = _as_number("HOLDER_LEASE", self.holder_lease, minimum=0.1, integer=False)
        if not holder_lease < MAX_HOLDER_LEASE:
            raise SettingsError("HOLDER_LEASE", f"must be below {MAX_HOLDER_LEASE:g} seconds")
        fix("holder_lease", holder_lease)
        fix(
            "store_failure", _choice("STORE_FAILURE", str(self.store_failure), STORE_FAILURE_MODES)
        )

        if self.peer_cert != "none" or self.require_cca:
            if not self.trust_anchors:
                raise SettingsError(
                    "TRUST_ANCHORS", "required when PEER_CERT is not none or REQUIRE_CCA is true"
                )
        if self.peer_cert in ("xfcc", "client-cert") and not self.trusted_proxies:
            raise SettingsError("TRUSTED_PROXIES", f"required when PEER_CERT is {self.peer_cert}")
        if self.revocation_lists and not self.trust_anchors:
            raise SettingsError(
                "REVOCATION_LISTS", "needs TRUST_ANCHORS: CRLs revoke nothing alone"
            )
        _check_loadable(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every `SBI_SETAUTH_<NAME>` variable; keyword arguments take precedence."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for settings_field in dataclasses.fields(cls):
            variable = ENV_PREFIX + settings_field.name.upper()
            if variable in environ:
                values[settings_field.name] = environ[variable]
        known = {
            ENV_PREFIX + settings_field.name.upper() for settings_field in dataclasses.fields(cls)
        }
        for variable in environ:
            if variable.startswith(ENV_PREFIX) and variable not in known:
                raise SettingsError(
                    variable[len(ENV_PREFIX) :], "not a setting of sbi_setauth (misspelled?)"
                )
        values.update(overrides)

        for required in ("nf_type", "nf_instance_id", "services", "nrf_issuers", "nrf_keys"):
            if not values.get(required):
                raise SettingsError(required.upper(), "required but not set")
        return cls(**values)

    @property
    def checks_certificates(self) -> bool:
        """Whether any certificate (peer or CCA signer) can be checked."""
        return bool(self.trust_anchors)


def _instance_id(name: str, value: Any) -> str:
    try:
        return normalize_nf_instance_id(str(value).strip())
    except IdentifierError:
        raise SettingsError(name, f"not an NF instance ID (UUID): {str(value)[:64]!r}") from None


def _split_items(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str):
        return _split(value)
    return tuple(value or ())


def _plmn_id(value: Any) -> tuple[str, str]:
    if isinstance(value, tuple) and len(value) == 2:
        mcc, mnc = value
    else:
        mcc, _, mnc = str(value).partition("-")
    if not (_MCC.fullmatch(str(mcc)) and _MNC.fullmatch(str(mnc))):
        raise SettingsError("PLMN_IDS", f"expected mcc-mnc such as 001-01, got {value!r}")
    return str(mcc), str(mnc)


def _snssai(value: Any) -> tuple[int, str | None]:
    if isinstance(value, tuple) and len(value) == 2:
        value = f"{value[0]}-{value[1]}" if value[1] else str(value[0])
    match = _SST_SD.fullmatch(str(value))
    if match is None or int(match.group(1)) > 255:
        raise SettingsError("SNSSAIS", f"expected sst or sst-sd such as 1-000001, got {value!r}")
    sd = match.group(2)
    return int(match.group(1)), sd.lower() if sd else None


def _check_loadable(settings: Settings) -> None:
    """Parse every file and address the settings name, so that a bad one stops start-up here.

    The middleware loads them again when it is built; Starlette builds it lazily, at the first
    lifespan or request event, where an error no longer stops every server.
    """
    from .certificates import TrustStore
    from .forwarded import parse_trusted_proxies
    from .keys import KeyFileError, NrfKeys
    from .leases import check_store_url
    from .operations import OperationScopes

    checks: list[tuple[str, Callable[[], object]]] = [
        ("NRF_KEYS", lambda: NrfKeys.from_files(settings.nrf_keys)),
        ("HOLDER_STORE", lambda: check_store_url(settings.holder_store)),
    ]
    if settings.trust_anchors:
        checks.append(("TRUST_ANCHORS", lambda: TrustStore.from_files(settings.trust_anchors)))
    if settings.revocation_lists:
        lists = settings.revocation_lists
        checks.append(
            ("REVOCATION_LISTS", lambda: TrustStore.from_files(settings.trust_anchors, lists))
        )
    if settings.trusted_proxies:
        proxies = ",".join(settings.trusted_proxies)
        checks.append(("TRUSTED_PROXIES", lambda: parse_trusted_proxies(proxies)))
    if settings.operation_scopes is not None:
        path = settings.operation_scopes
        checks.append(("OPERATION_SCOPES", lambda: OperationScopes.from_file(path)))
    for name, load in checks:
        try:
            load()
        except (KeyFileError, ValueError) as error:
            raise SettingsError(name, str(error)) from None
