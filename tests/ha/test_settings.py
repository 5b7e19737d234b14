"""The high-availability settings (issue 14): one Redis deployment, named by exactly one
of REDIS_URL/REDIS_HOST, REDIS_SENTINELS, REDIS_CLUSTER_NODES; each bad value named."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from gateway.config import Config
from publisher.connect import companion_key, parse_target
from publisher.settings import MissingSetting, RedisSettings, SettingError, redis_url_from_env

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26379", "REDIS_SENTINEL_MASTER": "mymaster"}


def test_sentinel_settings_make_a_sentinel_target() -> None:
    url = redis_url_from_env({**SENTINELS, "REDIS_PASSWORD": "p@ss/1", "REDIS_SENTINEL_PASSWORD": "s&s"})
    assert url is not None
    target = parse_target(url)
    assert target.mode == "sentinel"
    assert target.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (target.master, target.password, target.sentinel_password, target.db) == (
        "mymaster",
        "p@ss/1",
        "s&s",
        0,
    )


def test_cluster_settings_make_a_cluster_target() -> None:
    url = redis_url_from_env({"REDIS_CLUSTER_NODES": "a:7000,[::1]:7001"})
    assert url is not None
    target = parse_target(url)
    assert (target.mode, target.nodes, target.password) == ("cluster", (("a", 7000), ("::1", 7001)), None)


def test_the_urls_can_be_given_directly() -> None:
    assert parse_target("redis+sentinel://h:1/m/2").db == 2
    assert RedisSettings.from_env({"REDIS_URL": "redis+cluster://h:7000"}).url == "redis+cluster://h:7000"
    assert parse_target("redis://h:1/0").mode == "single"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"REDIS_URL": "redis://h/0", **SENTINELS}, "REDIS_URL and REDIS_SENTINELS"),
        ({"REDIS_HOST": "h", "REDIS_CLUSTER_NODES": "a:1"}, "REDIS_HOST and REDIS_CLUSTER_NODES"),
        ({**SENTINELS, "REDIS_CLUSTER_NODES": "a:1"}, "REDIS_SENTINELS and REDIS_CLUSTER_NODES"),
    ],
)
def test_two_deployments_are_refused_naming_both(env: dict[str, str], names: str) -> None:
    for read in (redis_url_from_env, RedisSettings.from_env, Config.from_env):
        with pytest.raises(SettingError, match=names):
            read(env)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REDIS_SENTINELS": "h:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h:0", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_CLUSTER_NODES": "h:99999"}, "REDIS_CLUSTER_NODES"),
        ({"REDIS_CLUSTER_NODES": " , "}, "REDIS_CLUSTER_NODES"),
        ({"REDIS_CLUSTER_NODES": "h:7000", "REDIS_DB": "3"}, "REDIS_DB"),
        ({"REDIS_URL": "redis+sentinel://h:1"}, "REDIS_URL"),
        ({"REDIS_URL": "redis+cluster://h:1/2"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://h", "PUBLISH_WAIT_REPLICAS": "-1"}, "PUBLISH_WAIT_REPLICAS"),
        (
            {"REDIS_URL": "redis://h", "PUBLISH_WAIT_REPLICAS": "1", "PUBLISH_DEDUPE_WINDOW": "0"},
            "PUBLISH_DEDUPE_WINDOW",
        ),
        ({"REDIS_URL": "redis://h", "PUBLISH_DEDUPE_WINDOW": "2d"}, "PUBLISH_DEDUPE_WINDOW"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingError) as raised:
        RedisSettings.from_env(env)
    assert raised.value.name == name
    assert name in str(raised.value)


def test_missing_master_is_a_missing_setting() -> None:
    with pytest.raises(MissingSetting, match="REDIS_SENTINEL_MASTER"):
        RedisSettings.from_env({"REDIS_SENTINELS": "h:1"})


def test_strict_publish_settings() -> None:
    default = RedisSettings.from_env({"REDIS_URL": "redis://h/0"})
    assert (default.wait_replicas, default.dedupe) == (0, 0.0)
    strict = RedisSettings.from_env({"REDIS_URL": "redis://h/0", "PUBLISH_WAIT_REPLICAS": "2"})
    assert (strict.wait_replicas, strict.dedupe) == (2, 300.0)
    keyed = RedisSettings.from_env({"REDIS_URL": "redis://h/0", "PUBLISH_DEDUPE_WINDOW": "1m"})
    assert (keyed.wait_replicas, keyed.dedupe) == (0, 60.0)


@pytest.mark.parametrize("stream", ["ws:events", "{tenant}:events", "a{b}c", "ws:{events"])
def test_companion_keys_share_the_stream_slot(stream: str) -> None:
    key = companion_key(stream, "dedupe:")
    assert key_slot(key.encode()) == key_slot(stream.encode())
    assert key_slot((key + "k1").encode()) == key_slot(stream.encode())


@pytest.mark.parametrize("stream", ["x{}y", "x}y{", "a}b"])
def test_a_stream_key_no_hash_tag_can_name_is_refused(stream: str) -> None:
    with pytest.raises(SettingError, match="STREAM_KEY"):
        RedisSettings.from_env({"REDIS_URL": "redis://h/0", "STREAM_KEY": stream})
