"""Settings: each default is written once (gateway/settings.py) and is what both
``Config()`` and an empty environment give; every field is read from its setting."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.config import _FIELDS, SETTINGS, Config, SettingError


def test_config_defaults_are_the_settings_table() -> None:
    assert Config.from_env({}) == Config()


def test_every_field_has_a_setting_and_reads_it() -> None:
    special = {"redis_url", "jwt_secret", "jwt_algorithms", "jwt_public_key"}
    fields = {f.name for f in dataclasses.fields(Config)}
    assert fields == set(_FIELDS) | special
    assert all(name in SETTINGS for name, _, _ in _FIELDS.values())


@pytest.mark.parametrize(("name", "value"), [("REPLAY_BATCH", "0"), ("LISTEN_BACKLOG", "many"),
                                             ("MAX_EVENT_SIZE", "10"), ("PRESENCE", "maybe"),
                                             ("PRESENCE_INTERVAL", "0"),
                                             ("PRESENCE_MAX_MEMBERS", "0")])  # fmt: skip
def test_a_bad_setting_is_refused_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingError) as info:
        Config.from_env({name: value})
    assert name in str(info.value)


def test_the_presence_heartbeat_is_at_least_the_interval() -> None:
    with pytest.raises(SettingError) as info:
        Config.from_env({"PRESENCE_INTERVAL": "2s", "PRESENCE_HEARTBEAT": "1s"})
    assert "PRESENCE_HEARTBEAT" in str(info.value)
    assert Config.from_env({"PRESENCE": "off"}).presence_enabled is False


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (None, "embedded event log"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://app:hunter2@cache.example:6380/1", "rediss://app:***@cache.example:6380/1"),
        (
            "redis+sentinel://:hunter2@10.0.0.5:26379,10.0.0.6:26379/flowwire?sentinel_password=s3cret",
            "redis+sentinel://:***@10.0.0.5:26379,10.0.0.6:26379/flowwire?sentinel_password=***",
        ),
    ],
)
def test_the_event_log_is_named_without_its_password(url: str | None, shown: str) -> None:
    from gateway.instance import where

    assert where(url) == shown
