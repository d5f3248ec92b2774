"""Settings: built in code or from SBI_SETAUTH_* variables; bad values stop start-up by name."""

from __future__ import annotations

import pytest

from sbi_setauth import SetAuthMiddleware, Settings, SettingsError

from .conftest import PRODUCER_ID, Pki


def environment(pki: Pki, **overrides: str) -> dict[str, str]:
    values = {
        "SBI_SETAUTH_NF_TYPE": "udm",
        "SBI_SETAUTH_NF_INSTANCE_ID": PRODUCER_ID.upper(),
        "SBI_SETAUTH_SERVICES": "nudm-sdm, nudm-uecm",
        "SBI_SETAUTH_NRF_ISSUERS": pki.nrf.nrf_instance_id,
        "SBI_SETAUTH_NRF_KEYS": str(pki.jwks_path),
        "SBI_SETAUTH_TRUST_ANCHORS": str(pki.anchors_path),
    }
    values.update({f"SBI_SETAUTH_{name}": value for name, value in overrides.items()})
    return values


def test_from_env_reads_every_documented_name(pki: Pki) -> None:
    scopes = pki.directory / "scopes.json"
    scopes.write_text("{}")
    crl = pki.directory / "crl.pem"
    crl.write_bytes(pki.ca.crl())
    settings = Settings.from_env(
        environment(
            pki,
            NF_SET_ID="SET1.UDMSET.5GC.MNC001.MCC001",
            PLMN_IDS="001-01,999-123",
            SNSSAIS="1,2-ABCDEF",
            TOKEN_ALGORITHMS="ES256",
            CLOCK_SKEW="5",
            CCA_MAX_AGE="120",
            REQUIRE_CCA="true",
            PEER_CERT="xfcc",
            TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8",
            TRUSTED_SCPS="0a1b2c3d-0000-4000-8000-000000000001",
            SET_CLAIM="nfSetId",
            SET_HEADER="X-Consumer-Set",
            OPERATION_SCOPES=str(scopes),
            EXEMPT_PATHS="/health,/notify/",
            EXCLUSIVE_USE="false",
            HOLDER_STORE="redis://127.0.0.1:6379/0",
            HOLDER_LEASE="2.5",
            STORE_FAILURE="open",
            REQUIRE_SET_PROOF="no",
            REVOCATION_LISTS=str(crl),
        )
    )
    assert settings.nf_type == "UDM"
    assert settings.nf_instance_id == PRODUCER_ID
    assert settings.nf_set_id == "set1.udmset.5gc.mnc001.mcc001"
    assert settings.services == ("nudm-sdm", "nudm-uecm")
    assert settings.plmn_ids == (("001", "01"), ("999", "123"))
    assert settings.snssais == ((1, None), (2, "abcdef"))
    assert settings.token_algorithms == ("ES256",)
    assert (settings.clock_skew, settings.cca_max_age, settings.require_cca) == (5, 120, True)
    assert settings.peer_cert == "xfcc"
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert settings.set_claim == "nfSetId" and settings.set_header == "x-consumer-set"
    assert settings.exempt_paths == ("/health", "/notify")
    assert settings.exclusive_use is False and settings.require_set_proof is False
    assert settings.holder_store == "redis://127.0.0.1:6379/0"
    assert settings.holder_lease == 2.5 and settings.store_failure == "open"
    assert settings.nrf_keys == (str(pki.jwks_path),)
    assert settings.trust_anchors == (str(pki.anchors_path),)
    assert settings.trusted_scps == ("0a1b2c3d-0000-4000-8000-000000000001",)
    assert settings.operation_scopes == str(scopes)
    assert settings.revocation_lists == (str(crl),)


def test_defaults_follow_the_settings_table(pki: Pki) -> None:
    settings = Settings.from_env(environment(pki))
    assert settings.token_algorithms == ("ES256", "RS256")
    assert settings.clock_skew == 30 and settings.cca_max_age == 300
    assert settings.require_cca is False and settings.peer_cert == "tls"
    assert settings.set_claim == "consumerNfSetId" and settings.set_header == "3gpp-sbi-binding"
    assert settings.exclusive_use is True and settings.holder_store == "memory"
    assert settings.require_set_proof is True and settings.revocation_lists == ()
    assert settings.holder_lease == 30 and settings.store_failure == "closed"


@pytest.mark.parametrize(
    "name,value",
    [
        ("NF_TYPE", "udm manager"),
        ("NF_INSTANCE_ID", "not-a-uuid"),
        ("NF_INSTANCE_ID", "{9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1}"),
        ("NF_SET_ID", "set1.udmset.5gc.mnc01.mcc001"),
        ("PLMN_IDS", "0011-01"),
        ("PLMN_IDS", "001-1"),
        ("SNSSAIS", "256"),
        ("SNSSAIS", "1-xyz"),
        ("SERVICES", "Nudm SDM"),
        ("NRF_ISSUERS", "nrf-1"),
        ("NRF_KEYS", "/nonexistent/nrf.jwks"),
        ("TOKEN_ALGORITHMS", "HS256"),
        ("TOKEN_ALGORITHMS", "none"),
        ("TRUST_ANCHORS", "/nonexistent/ca.pem"),
        ("CLOCK_SKEW", "-1"),
        ("CLOCK_SKEW", "soon"),
        ("CCA_MAX_AGE", "0"),
        ("REQUIRE_CCA", "maybe"),
        ("PEER_CERT", "header"),
        ("TRUSTED_SCPS", "scp-1"),
        ("SET_CLAIM", "consumer set"),
        ("SET_HEADER", "bad header"),
        ("OPERATION_SCOPES", "/nonexistent/scopes.json"),
        ("EXEMPT_PATHS", "health"),
        ("EXCLUSIVE_USE", "2"),
        ("HOLDER_STORE", "memcached://127.0.0.1"),
        ("HOLDER_LEASE", "0"),
        ("STORE_FAILURE", "ignore"),
        ("REVOCATION_LISTS", "/nonexistent/crl.pem"),
    ],
)
def test_bad_value_names_the_variable(pki: Pki, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environment(pki, **{name: value}))
    assert f"SBI_SETAUTH_{name}" in str(raised.value)


@pytest.mark.parametrize(
    "name", ["NF_TYPE", "NF_INSTANCE_ID", "SERVICES", "NRF_ISSUERS", "NRF_KEYS"]
)
def test_missing_required_value_names_the_variable(pki: Pki, name: str) -> None:
    env = environment(pki)
    del env[f"SBI_SETAUTH_{name}"]
    with pytest.raises(SettingsError, match=f"SBI_SETAUTH_{name}"):
        Settings.from_env(env)


def test_trust_anchors_required_when_certificates_are_checked(pki: Pki) -> None:
    env = environment(pki)
    del env["SBI_SETAUTH_TRUST_ANCHORS"]
    with pytest.raises(SettingsError, match="SBI_SETAUTH_TRUST_ANCHORS"):
        Settings.from_env(env)
    assert Settings.from_env(env, peer_cert="none").trust_anchors == ()


def test_forwarded_certificates_need_trusted_proxies(pki: Pki) -> None:
    with pytest.raises(SettingsError, match="SBI_SETAUTH_TRUSTED_PROXIES"):
        Settings.from_env(environment(pki, PEER_CERT="client-cert"))


def test_code_and_environment_build_the_same_settings(pki: Pki) -> None:
    from_code = pki.settings(exempt_paths=())
    from_env = Settings.from_env(environment(pki))
    assert from_code == from_env


def test_unparsable_key_file_stops_start_up_by_name(pki: Pki) -> None:
    broken = pki.directory / "broken.jwks"
    broken.write_text("{not json")
    with pytest.raises(SettingsError, match="SBI_SETAUTH_NRF_KEYS"):
        pki.settings(nrf_keys=str(broken))


def test_malformed_trusted_proxy_stops_start_up_by_name(pki: Pki) -> None:
    with pytest.raises(SettingsError, match="SBI_SETAUTH_TRUSTED_PROXIES"):
        pki.settings(peer_cert="xfcc", trusted_proxies="127.0.0.1,not-an-address")


def test_malformed_operation_scopes_stop_start_up_by_name(pki: Pki) -> None:
    scopes = pki.directory / "scopes.json"
    scopes.write_text('{"FETCH nudm-sdm": "x"}')
    with pytest.raises(SettingsError, match="SBI_SETAUTH_OPERATION_SCOPES"):
        pki.settings(operation_scopes=str(scopes))


@pytest.mark.parametrize("name", ["TRUST_ANCHORS", "REVOCATION_LISTS"])
def test_unparsable_pki_file_stops_start_up_by_name(pki: Pki, name: str) -> None:
    broken = pki.directory / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(SettingsError, match=f"SBI_SETAUTH_{name}"):
        pki.settings(**{name.lower(): str(broken)})


def test_revocation_lists_need_trust_anchors(pki: Pki) -> None:
    crl = pki.directory / "crl.pem"
    crl.write_bytes(pki.ca.crl())
    assert pki.settings(revocation_lists=str(crl)).revocation_lists == (str(crl),)
    with pytest.raises(SettingsError, match="SBI_SETAUTH_REVOCATION_LISTS"):
        pki.settings(revocation_lists=str(crl), trust_anchors=(), peer_cert="none")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?bogus=1",
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/notadb",
        "redis://127.0.0.1:6379/0?socket_timeout=soon",
    ],
)
def test_unusable_redis_url_stops_start_up_by_name(pki: Pki, url: str) -> None:
    with pytest.raises(SettingsError, match="SBI_SETAUTH_HOLDER_STORE") as raised:
        pki.settings(holder_store=url)
    assert "127.0.0.1" not in str(raised.value)


@pytest.mark.parametrize("value", ["86400", "inf", "nan"])
def test_holder_lease_beyond_a_day_stops_start_up(pki: Pki, value: str) -> None:
    with pytest.raises(SettingsError, match="SBI_SETAUTH_HOLDER_LEASE"):
        pki.settings(holder_lease=value)


def test_misspelled_variable_stops_start_up_by_name(pki: Pki) -> None:
    env = environment(pki)
    env["SBI_SETAUTH_HOLDER_LEAS"] = "5"
    with pytest.raises(SettingsError, match="SBI_SETAUTH_HOLDER_LEAS"):
        Settings.from_env(env)
