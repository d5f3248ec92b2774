"""`sbi-setauth inspect`: decoded contents, what verified, and the middleware's own decision."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sbi_setauth.cli import main
from sbi_setauth.inspection import inspect_credentials, read_env_file, settings_from

from .conftest import AMF_SET, OTHER_AMF_SET, PRODUCER_ID, Pki

AM_DATA = "/nudm-sdm/v2/imsi-001010000000001/am-data"


def env_file(pki: Pki) -> Path:
    path = pki.directory / "udm.env"
    path.write_text(
        "# producer settings\n"
        "SBI_SETAUTH_NF_TYPE=UDM\n"
        f"SBI_SETAUTH_NF_INSTANCE_ID={PRODUCER_ID}\n"
        "SBI_SETAUTH_SERVICES=nudm-sdm\n"
        f"export SBI_SETAUTH_NRF_ISSUERS={pki.nrf.nrf_instance_id}\n"
        f'SBI_SETAUTH_NRF_KEYS="{pki.jwks_path}"\n'
        f"SBI_SETAUTH_TRUST_ANCHORS={pki.anchors_path}\n"
    )
    return path


def write(pki: Pki, name: str, content: str | bytes) -> str:
    path = pki.directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def test_accepted_set_token_reports_the_consumer(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    amf = pki.amf()
    token = pki.set_token(amf)
    cca = amf.cca()
    argv = [
        "inspect",
        "--env-file", str(env_file(pki)),
        "--token", write(pki, "token", token),
        "--cca", write(pki, "cca", cca),
        "--cert", write(pki, "amf.pem", "".join(amf.chain_pem)),
        "--path", AM_DATA,
        "--set-header", AMF_SET,
    ]

    status = main(argv)

    output = capsys.readouterr().out
    assert status == 0
    assert "ACCEPTED (200)" in output
    assert f"consumer NF instance: {amf.nf_instance_id} (proven by peer_certificate)" in output
    assert f"consumer NF Set: {AMF_SET}" in output
    assert '"consumerNfSetId": "set1.amfset.5gc.mnc001.mcc001"' in output
    assert "nfTypes: AMF" in output
    assert output.count("verified:") == 3
    assert token not in output and token.split(".")[2] not in output
    assert cca.split(".")[2] not in output
    assert "PRIVATE KEY" not in output


def test_rejected_request_names_the_cause(pki: Pki) -> None:
    stranger = pki.amf(OTHER_AMF_SET)
    token = pki.set_token(pki.amf())
    settings, problem = settings_from({}, str(env_file(pki)))
    assert problem is None

    report = inspect_credentials(
        settings=settings,
        access_token=token,
        peer_certificate_pem="".join(stranger.chain_pem).encode(),
        path=AM_DATA,
        set_header=f"bl=nf-set; nfset={AMF_SET}",
    )

    assert report.exit_code == 1
    assert (report.status, report.cause) == (403, "NF_SET_ID_MISMATCH")
    text = str(report)
    assert "REJECTED: 403 NF_SET_ID_MISMATCH" in text
    assert f"NF Set ID: {OTHER_AMF_SET}" in text


def test_expired_token_is_decoded_but_not_verified(pki: Pki) -> None:
    amf = pki.amf()
    token = pki.instance_token(amf, iat=1_000_000_000, lifetime=60)
    settings, _ = settings_from({}, str(env_file(pki)))

    report = inspect_credentials(
        settings=settings,
        access_token=token,
        peer_certificate_pem="".join(amf.chain_pem).encode(),
        path=AM_DATA,
    )

    text = str(report)
    assert report.cause == "ACCESS_TOKEN_INVALID"
    assert "NOT verified: ACCESS_TOKEN_INVALID: the access token has expired" in text
    assert "exp: 2001-09-09 01:47:40 UTC" in text


def test_token_from_stdin_without_settings_is_only_decoded(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("NF_TYPE", "NF_INSTANCE_ID", "SERVICES", "NRF_ISSUERS", "NRF_KEYS"):
        monkeypatch.delenv(f"SBI_SETAUTH_{name}", raising=False)
    token = pki.instance_token(pki.amf())
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(token.encode() + b"\n")))

    status = main(["inspect", "--token", "-"])

    output = capsys.readouterr().out
    assert status == 2
    assert "nothing is verified" in output
    assert '"scope": "nudm-sdm"' in output
    assert "Decision" not in output


def test_malformed_token_is_reported_not_raised(pki: Pki) -> None:
    settings, _ = settings_from({}, str(env_file(pki)))
    report = inspect_credentials(
        settings=settings,
        access_token="not.a=token",
        peer_certificate_pem="".join(pki.amf().chain_pem).encode(),
        path=AM_DATA,
    )
    text = str(report)
    assert "cannot be decoded" in text
    assert report.cause == "ACCESS_TOKEN_INVALID"


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("# comment\n\nexport A=1\nB = 'two words'\n")
    assert read_env_file(path) == {"A": "1", "B": "two words"}
    path.write_text("just words\n")
    with pytest.raises(ValueError):
        read_env_file(path)


def test_inspect_needs_some_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect"]) == 2
    assert "give --token" in capsys.readouterr().err
