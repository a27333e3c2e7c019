"""Settings: defaults < burgo.toml < BURGO_* environment < flags; bad values name key and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from burgo.config import Settings, SettingsError, load_settings


def toml(tmp_path: Path, text: str) -> Path:
    """A settings file holding ``text``."""
    path = tmp_path / "burgo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_apply_without_any_source() -> None:
    settings = load_settings(environ={}, config_path=None)
    assert settings == Settings()
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "info")


def test_a_missing_settings_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(environ={}, config_path=tmp_path / "absent.toml") == Settings()


@pytest.mark.parametrize(
    ("in_file", "in_env", "in_flags", "expected"),
    [
        (False, False, False, 8000),
        (True, False, False, 9001),
        (True, True, False, 9002),
        (True, True, True, 9003),
        (False, True, False, 9002),
        (False, False, True, 9003),
        (True, False, True, 9003),
    ],
)
def test_each_source_overrides_the_ones_before_it(
    tmp_path: Path, in_file: bool, in_env: bool, in_flags: bool, expected: int
) -> None:
    config = toml(tmp_path, "[burgo]\nport = 9001\n" if in_file else "[burgo]\n")
    environ = {"BURGO_PORT": "9002"} if in_env else {}
    flags = {"port": 9003} if in_flags else {}
    settings = load_settings(flags=flags, environ=environ, config_path=config)
    assert settings.port == expected


def test_sources_merge_key_by_key(tmp_path: Path) -> None:
    config = toml(
        tmp_path,
        '[burgo]\nhost = "0.0.0.0"\nport = 9001\nlog-level = "debug"\ndb = "/srv/b.db"\n',
    )
    settings = load_settings(
        flags={"db": "/tmp/flag.db", "port": None},
        environ={"BURGO_PORT": "9002", "BURGO_LOG_JSON": "yes", "HOME": "/root"},
        config_path=config,
    )
    assert settings.host == "0.0.0.0"
    assert settings.port == 9002
    assert settings.log_level == "debug"
    assert settings.log_json is True
    assert settings.db == "/tmp/flag.db"
    assert settings.max_body_bytes == Settings().max_body_bytes


def test_environment_values_are_typed() -> None:
    settings = load_settings(
        environ={
            "BURGO_CONTEXT_FETCH_TIMEOUT": "2.5",
            "BURGO_SQLITE_SYNCHRONOUS": "NORMAL",
            "BURGO_PUBLIC_URL": "https://iot.example-town.pt",
        },
        config_path=None,
    )
    assert settings.context_fetch_timeout == 2.5
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.public_url == "https://iot.example-town.pt"


def test_the_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BURGO_PORT", "9321")
    assert load_settings(config_path=None).port == 9321


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load_settings(environ={"PORT": "1", "HOME": "/root"}, config_path=None)
    assert settings == Settings()


def test_a_misspelt_burgo_variable_is_refused_by_name() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"BURGO_PROT": "9000"}, config_path=None)
    assert "BURGO_PROT" in str(caught.value)
    assert "BURGO_PORT" in str(caught.value)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"BURGO_PORT": "abc"}, config_path=None)
    message = str(caught.value)
    assert "'port'" in message
    assert "BURGO_PORT" in message
    assert "from environment" in message


def test_a_bad_file_value_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = toml(tmp_path, '[burgo]\nlog_level = "chatty"\n')
    with pytest.raises(SettingsError, match=r"'log_level' from .*burgo\.toml"):
        load_settings(environ={}, config_path=config)


def test_a_bad_flag_names_the_key_and_the_command_line() -> None:
    with pytest.raises(SettingsError, match="'port' from command line"):
        load_settings(flags={"port": 70000}, environ={}, config_path=None)


def test_the_winning_source_is_the_one_blamed(tmp_path: Path) -> None:
    config = toml(tmp_path, '[burgo]\nport = "not a port"\n')
    with pytest.raises(SettingsError, match=r"'port' .*from environment"):
        load_settings(environ={"BURGO_PORT": "-1"}, config_path=config)
    assert load_settings(environ={"BURGO_PORT": "8080"}, config_path=config).port == 8080


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"BURGO_PORT": "abc", "BURGO_MAX_BODY_BYTES": "10"}, config_path=None)
    assert "'port'" in str(caught.value)
    assert "'max_body_bytes'" in str(caught.value)


def test_an_unknown_key_in_the_file_is_rejected_by_name(tmp_path: Path) -> None:
    config = toml(tmp_path, "[burgo]\nport = 8080\nprot = 8080\n")
    with pytest.raises(SettingsError, match=r"'prot' from .*burgo\.toml"):
        load_settings(environ={}, config_path=config)


def test_a_file_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    config = toml(tmp_path, "[burgo\nport = \n")
    with pytest.raises(SettingsError, match=r"burgo\.toml"):
        load_settings(environ={}, config_path=config)


def test_an_empty_database_path_is_refused() -> None:
    with pytest.raises(SettingsError, match="'db' from command line"):
        load_settings(flags={"db": "  "}, environ={}, config_path=None)


def test_a_setting_outside_the_burgo_table_is_rejected_by_name(tmp_path: Path) -> None:
    config = toml(tmp_path, '[burgo]\nhost = "0.0.0.0"\n[server]\nport = 8080\n')
    with pytest.raises(SettingsError, match=r"'server' from .*burgo\.toml is outside"):
        load_settings(environ={}, config_path=config)


def test_a_file_without_a_burgo_table_holds_settings_at_the_top(tmp_path: Path) -> None:
    config = toml(tmp_path, "port = 9005\n")
    assert load_settings(environ={}, config_path=config).port == 9005
