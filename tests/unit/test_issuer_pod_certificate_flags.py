"""The issuer's Pod certificate flags: what they set, and what they refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from issuer.runtime.settings import POD_BACKDATE, POD_REFRESH_FRACTION, Settings
from pkiwarden.local.issuer_process import issuer_argv, parse_settings


def run(*flags: str) -> Settings:
    return parse_settings(["issuer", "run", *flags])


def test_the_defaults_refresh_at_two_thirds_and_backdate_a_minute() -> None:
    settings = run()
    assert settings.pod_refresh_fraction == POD_REFRESH_FRACTION == 2 / 3
    assert settings.pod_backdate == POD_BACKDATE == timedelta(minutes=1)


def test_the_local_issuers_command_line_carries_both() -> None:
    wanted = Settings(pod_refresh_fraction=0.0, pod_backdate=timedelta(minutes=4))
    flags = [arg for arg in issuer_argv(wanted) if arg.startswith("--pod-certificate-")]
    settings = run(*flags)
    assert (settings.pod_refresh_fraction, settings.pod_backdate) == (0.0, timedelta(minutes=4))


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--pod-certificate-refresh=1", "must be at least 0 and less than 1"),
        ("--pod-certificate-refresh=soon", "is not a number"),
        ("--pod-certificate-backdate=5m", "must be less than 5m: the API server refuses"),
    ],
)
def test_a_value_the_api_would_refuse_is_a_usage_error(
    flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        run(flag)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err
