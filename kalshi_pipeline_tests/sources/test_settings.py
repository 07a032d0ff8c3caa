"""Environment settings: garbage is refused by name, with the value and what is accepted.

Every ``KALSHI_*`` variable is read by :mod:`kalshi_pipeline.sources.settings`; these
tests feed each kind of setting the values users actually type by mistake.
"""

from __future__ import annotations

import os

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.sources.collector_connection import ConnectionSettings
from kalshi_pipeline.sources.settings import (
    CONNECT_TIMEOUT,
    EXECUTOR,
    PIPELINE_HOME,
    RETRAIN_AFTER_SESSIONS,
    SETTINGS,
    SOURCE_RETRY_DELAY,
    STATEMENT_TIMEOUT,
    SettingError,
    check_all,
)

SECONDS = (CONNECT_TIMEOUT, STATEMENT_TIMEOUT, SOURCE_RETRY_DELAY)


@pytest.mark.parametrize("setting", SECONDS, ids=lambda s: s.name)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e9", "abc", "-1", "10s", "1,5"])
def test_a_number_of_seconds_that_is_not_finite_or_in_range_is_refused_by_name(setting, value):
    with pytest.raises(SettingError) as raised:
        setting.read({setting.name: value})
    message = str(raised.value)
    assert message.startswith(f"{setting.name}={value!r} is not a finite number of seconds ")
    assert f"to {setting.maximum:g}" in message or f"at most {setting.maximum:g}" in message
    assert message.endswith(f"(fix it, or unset it for the default {setting.default:g})")
    assert "\n" not in message


def test_the_bounds_of_the_seconds_settings():
    assert SOURCE_RETRY_DELAY.read({SOURCE_RETRY_DELAY.name: "0"}) == 0
    assert SOURCE_RETRY_DELAY.read({SOURCE_RETRY_DELAY.name: " 3600 "}) == 3600
    with pytest.raises(SettingError, match="from 0 to 3600"):
        SOURCE_RETRY_DELAY.read({SOURCE_RETRY_DELAY.name: "3600.5"})
    for timeout in (CONNECT_TIMEOUT, STATEMENT_TIMEOUT):
        assert timeout.read({timeout.name: "86400"}) == 86400
        for bad in ("0", "-0", "86401"):
            with pytest.raises(SettingError, match="above 0 and at most 86400"):
                timeout.read({timeout.name: bad})


@pytest.mark.parametrize("value", ["0", "-1", "abc", "3.0", "1e3", "nan", "100001"])
def test_retrain_after_is_a_whole_number_of_sessions_from_one(value):
    with pytest.raises(SettingError) as raised:
        RETRAIN_AFTER_SESSIONS.read({RETRAIN_AFTER_SESSIONS.name: value})
    assert str(raised.value).startswith(
        f"KALSHI_RETRAIN_AFTER_SESSIONS={value!r} is not a whole number of sessions from 1 to "
        "100000"
    )


def test_unset_or_blank_settings_take_their_defaults_and_good_values_are_typed():
    assert [s.read({}) for s in SETTINGS] == [s.default for s in SETTINGS]
    assert SOURCE_RETRY_DELAY.read({SOURCE_RETRY_DELAY.name: "  "}) == 10
    assert RETRAIN_AFTER_SESSIONS.read({RETRAIN_AFTER_SESSIONS.name: " 7 "}) == 7
    assert type(RETRAIN_AFTER_SESSIONS.read({})) is int
    assert EXECUTOR.read({EXECUTOR.name: " Celery "}) == "celery"
    # A path is kept as given (blanks may belong to it).
    assert PIPELINE_HOME.read({PIPELINE_HOME.name: " my home"}) == " my home"


def test_an_unknown_executor_is_refused_naming_the_choices():
    with pytest.raises(SettingError) as raised:
        EXECUTOR.read({EXECUTOR.name: "bogus"})
    assert str(raised.value) == (
        "KALSHI_EXECUTOR='bogus' is not one of multiprocess, celery "
        "(fix it, or unset it for the default multiprocess)"
    )


def test_a_long_bad_value_is_cut_to_keep_the_error_one_line():
    with pytest.raises(SettingError) as raised:
        check_all({SOURCE_RETRY_DELAY.name: "9" * 5000})
    assert len(str(raised.value)) < 200


def test_an_infinite_collector_timeout_is_a_setting_error_not_an_overflow():
    """``inf`` used to pass and then raise OverflowError where libpq's whole seconds were
    computed; now it is refused when read, naming the variable."""
    for name in (CONNECT_TIMEOUT.name, STATEMENT_TIMEOUT.name):
        with pytest.raises(SettingError, match=f"^{name}='inf' is not a finite number"):
            ConnectionSettings.from_env({name: "inf"})
    assert ConnectionSettings.from_env({}) == ConnectionSettings()  # the same defaults


def test_the_command_exits_2_with_one_line_naming_the_variable(monkeypatch, capsys):
    """``generate --postgres`` reads the collector's timeouts before connecting: no server
    is needed (the port is closed) to see the setting refused."""
    monkeypatch.setenv(CONNECT_TIMEOUT.name, "inf")
    url = "postgresql://postgres:s3cret-pw@127.0.0.1:1/x"

    code = main(["generate", "--postgres", url, "--sessions", "1", "--markets", "2"])

    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == [
        "error: KALSHI_COLLECTOR_CONNECT_TIMEOUT_S='inf' is not a finite number of seconds "
        "above 0 and at most 86400 (fix it, or unset it for the default 10)"
    ]


@pytest.mark.parametrize("value", ["1_0", "+1", "\u0661", "1e1"])
def test_a_number_only_in_plain_decimal_notation_is_read(value):
    """Python's ``float()`` and ``int()`` read all of these (``1_0`` as 10, ``\u0661`` as
    1); a setting takes only ``-``, ASCII digits and one decimal point."""
    for setting in (SOURCE_RETRY_DELAY, RETRAIN_AFTER_SESSIONS):
        with pytest.raises(SettingError) as raised:
            setting.read({setting.name: value})
        assert str(raised.value).startswith(f"{setting.name}={value!r} is not a ")
    for plain, number in [("2.50", 2.5), (".5", 0.5), ("5.", 5)]:
        assert SOURCE_RETRY_DELAY.read({SOURCE_RETRY_DELAY.name: plain}) == number
    assert SOURCE_RETRY_DELAY.read({SOURCE_RETRY_DELAY.name: "-0"}) == 0


def test_a_non_utf8_home_fails_the_definitions_load_naming_the_variable(monkeypatch, tmp_path):
    """``dagster dev`` and the daemon read the home from the variable, not the command
    line: a byte that is not UTF-8 is refused when the definitions load (``check_all``),
    not when TensorBoard first writes under it."""
    from kalshi_pipeline.definitions import defs

    home = os.fsdecode(os.fsencode(tmp_path) + b"/home\xff")  # as the shell gives it
    monkeypatch.setenv(PIPELINE_HOME.name, home)
    expected = (
        f"{PIPELINE_HOME.name} {tmp_path}/home\\xff holds a byte that is not UTF-8 "
        "(choose a path of UTF-8 characters: TensorBoard and the stores need one)"
    )
    with pytest.raises(SettingError) as raised:
        check_all()
    assert str(raised.value) == expected
    with pytest.raises(Exception) as raised:
        defs()
    causes, exc = [], raised.value
    while exc is not None:
        causes.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert expected in [str(e) for e in causes if isinstance(e, SettingError)]
    assert not os.path.exists(os.fsencode(home))
