"""Settings: defaults, environment names, validation with the bad key named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reference_server.errors import SettingsError
from reference_server.settings import SETTING_DOCS, SETTING_MAXIMA, Settings, sentinel_address
from tests.procs import ROOT

pytestmark = pytest.mark.unit


def test_defaults_match_the_protocol_limits_table() -> None:
    s = Settings()
    assert (s.rate_tokens_per_sec, s.rate_burst, s.rate_notify_cooldown_seconds) == (20, 40, 5)
    assert (s.flood_drop_threshold, s.flood_window_seconds) == (200, 10)
    assert s.max_inbound_message_bytes == 65_536
    assert s.idle_disconnect_seconds == 600
    assert s.backpressure_disconnect_threshold == 5
    assert (s.host, s.port) == ("127.0.0.1", 8000)


def test_original_platform_environment_names_keep_working() -> None:
    env = {
        "WS_AUTH_REQUIRED": "true",
        "WS_AUTH_TOKEN": "s3cret",
        "WS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "WS_RATE_TOKENS_PER_SEC": "5",
        "WS_RATE_BURST": "9",
    }
    s = Settings.from_env(env)
    assert s.auth_required and s.auth_token == "s3cret"
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert (s.rate_tokens_per_sec, s.rate_burst) == (5.0, 9.0)


def test_sentinels_are_read_as_addresses_and_default_to_one_replica_confirming() -> None:
    env = {
        "WS_REDIS_SENTINELS": " 10.0.0.1:26379, [::1]:26380,",
        "WS_REDIS_SENTINEL_MASTER": "hive",
    }
    s = Settings.from_env(env)
    assert s.redis_sentinels == ("10.0.0.1:26379", "[::1]:26380")
    assert [sentinel_address(a) for a in s.redis_sentinels] == [
        ("10.0.0.1", 26379),
        ("::1", 26380),
    ]
    assert s.redis_enabled and s.redis_replicas_to_confirm() == 1
    zero = Settings.from_env({**env, "WS_REDIS_WAIT_REPLICAS": "0"})
    assert zero.redis_replicas_to_confirm(replica_seen=True) == 0
    assert Settings.from_env({**env, "WS_REDIS_WAIT_REPLICAS": ""}).redis_replicas_to_confirm() == 1


def test_a_plain_redis_url_confirms_with_one_replica_once_one_was_seen_unless_told() -> None:
    s = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert s.redis_enabled and s.redis_replicas_to_confirm() == 0
    assert s.redis_replicas_to_confirm(replica_seen=True) == 1
    s = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "WS_REDIS_WAIT_REPLICAS": "2"})
    assert s.redis_replicas_to_confirm() == 2
    s = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "WS_REDIS_WAIT_REPLICAS": "0"})
    assert s.redis_replicas_to_confirm(replica_seen=True) == 0
    assert not Settings().redis_enabled


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://127.0.0.1:1/0"},
        {"WS_REDIS_SENTINELS": "127.0.0.1:26379", "WS_REDIS_SENTINEL_MASTER": "hive"},
    ],
)
def test_a_wait_timeout_without_room_for_redis_tick_is_refused_naming_both_settings(
    env: dict[str, str],
) -> None:
    # Redis ends a timed-out WAIT only at its next cron tick (100 ms at hz 10): 990 ms with
    # a 1 s socket timeout ended as a socket timeout, not as the promised 503.
    tight = {**env, "WS_REDIS_TIMEOUT_SECONDS": "1", "WS_REDIS_WAIT_TIMEOUT_MS": "990"}
    with pytest.raises(SettingsError, match=r"WS_REDIS_WAIT_TIMEOUT_MS.*WS_REDIS_TIMEOUT_SECONDS"):
        Settings.from_env(tight)
    assert Settings.from_env({**tight, "WS_REDIS_WAIT_TIMEOUT_MS": "800"})
    assert Settings.from_env({**tight, "WS_REDIS_WAIT_REPLICAS": "0"})  # nothing waits


def test_passwords_for_sentinel_deployments_are_refused_without_sentinels_and_never_shown() -> None:
    with pytest.raises(SettingsError, match="put the password in the URL"):
        Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "WS_REDIS_PASSWORD": "x"})
    with pytest.raises(SettingsError, match="WS_REDIS_SENTINEL_PASSWORD needs"):
        Settings.from_env({"WS_REDIS_SENTINEL_PASSWORD": "x"})
    s = Settings.from_env(
        {
            "WS_REDIS_SENTINELS": "127.0.0.1:26379",
            "WS_REDIS_SENTINEL_MASTER": "hive",
            "WS_REDIS_PASSWORD": "node-secret",
            "WS_REDIS_SENTINEL_PASSWORD": "sentinel-secret",
        }
    )
    assert "secret" not in repr(s)


def test_redis_url_and_overrides() -> None:
    s = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "WS_PORT": "9"}, port=10)
    assert s.redis_url == "redis://127.0.0.1:1/0"
    assert s.port == 10


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"WS_PORT": "eighty"}, "WS_PORT"),
        ({"WS_PORT": "70000"}, "WS_PORT"),
        ({"WS_RATE_BURST": "-1"}, "WS_RATE_BURST"),
        ({"WS_RATE_TOKENS_PER_SEC": "nan"}, "WS_RATE_TOKENS_PER_SEC"),
        ({"WS_SEND_QUEUE_MAX_MESSAGES": "0"}, "WS_SEND_QUEUE_MAX_MESSAGES"),
        ({"WS_AUTH_REQUIRED": "maybe"}, "WS_AUTH_REQUIRED"),
        ({"WS_AUTH_REQUIRED": "1"}, "WS_AUTH_TOKEN"),
        ({"WS_MAX_FRAME_BYTES": "100"}, "WS_MAX_FRAME_BYTES"),
        ({"WS_RATE_BRUST": "3"}, "WS_RATE_BRUST"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        # Sentinel: both names or neither, never with REDIS_URL, host:port entries.
        ({"WS_REDIS_SENTINELS": "127.0.0.1:26379"}, "WS_REDIS_SENTINEL_MASTER"),
        ({"WS_REDIS_SENTINEL_MASTER": "hive"}, "WS_REDIS_SENTINELS"),
        (
            {"WS_REDIS_SENTINELS": "a:1", "WS_REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://"},
            "REDIS_URL",
        ),
        ({"WS_REDIS_SENTINELS": "a:1,b", "WS_REDIS_SENTINEL_MASTER": "m"}, "WS_REDIS_SENTINELS"),
        ({"WS_REDIS_SENTINELS": "a:0", "WS_REDIS_SENTINEL_MASTER": "m"}, "WS_REDIS_SENTINELS"),
        ({"WS_REDIS_SENTINELS": "a:\u0661", "WS_REDIS_SENTINEL_MASTER": "m"}, "WS_REDIS_SENTINELS"),
        ({"WS_REDIS_SENTINELS": ":1", "WS_REDIS_SENTINEL_MASTER": "m"}, "WS_REDIS_SENTINELS"),
        # WAIT 0 ms would wait forever; a WAIT past the socket timeout looks like a dead Redis.
        ({"WS_REDIS_WAIT_TIMEOUT_MS": "0"}, "WS_REDIS_WAIT_TIMEOUT_MS"),
        (
            {
                "WS_REDIS_SENTINELS": "a:1",
                "WS_REDIS_SENTINEL_MASTER": "m",
                "WS_REDIS_WAIT_TIMEOUT_MS": "2000",
            },
            "WS_REDIS_WAIT_TIMEOUT_MS",
        ),
        (
            {
                "REDIS_URL": "redis://",
                "WS_REDIS_WAIT_REPLICAS": "1",
                "WS_REDIS_WAIT_TIMEOUT_MS": "2000",
            },
            "WS_REDIS_WAIT_TIMEOUT_MS",
        ),
        ({"WS_REDIS_WAIT_REPLICAS": "-1"}, "WS_REDIS_WAIT_REPLICAS"),
        ({"WS_REDIS_WAIT_REPLICAS": "one"}, "WS_REDIS_WAIT_REPLICAS"),
        ({"WS_LOG_LEVEL": "loud"}, "WS_LOG_LEVEL"),
        ({"WS_MAX_JSON_DEPTH": "0"}, "WS_MAX_JSON_DEPTH"),
        ({"WS_LOG_REPEAT_WINDOW_SECONDS": "0"}, "WS_LOG_REPEAT_WINDOW_SECONDS"),
        # os.environ decodes bytes that are not UTF-8 to lone surrogates (surrogateescape).
        (
            {"WS_AUTH_REQUIRED": "1", "WS_AUTH_TOKEN": b"s\xff".decode("utf-8", "surrogateescape")},
            "WS_AUTH_TOKEN",
        ),
        ({"WS_ALLOWED_ORIGINS": "http://a,http://\udcff"}, "WS_ALLOWED_ORIGINS"),
        # Half of it must outlast the liveness TTL (3 heartbeats): else an instance that
        # missed a beat would already count as too stale to republish producer messages.
        ({"WS_REDIS_HEARTBEAT_SECONDS": "5"}, "WS_REDIS_PRODUCER_DEDUPE_SECONDS"),
        ({"WS_REDIS_PRODUCER_DEDUPE_SECONDS": "6"}, "WS_REDIS_PRODUCER_DEDUPE_SECONDS"),
        # Review 14: values that would turn a protection off.
        ({"WS_SEND_QUEUE_MAX_BYTES": "100000000000000000000000"}, "WS_SEND_QUEUE_MAX_BYTES"),
        ({"WS_HTTP_REQUEST_TIMEOUT_SECONDS": "1e308"}, "WS_HTTP_REQUEST_TIMEOUT_SECONDS"),
        ({"WS_MAX_JSON_DEPTH": "100000"}, "WS_MAX_JSON_DEPTH"),
        ({"WS_RATE_TOKENS_PER_SEC": "5e-324"}, "WS_RATE_TOKENS_PER_SEC"),
        ({"WS_RATE_BURST": "1e300"}, "WS_RATE_BURST"),
        # Review 14: int() and float() read other scripts' digits.
        ({"WS_PORT": "\u0668\u0660\u0668\u0660"}, "WS_PORT"),
        ({"WS_RATE_BURST": "\uff15"}, "WS_RATE_BURST"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        Settings.from_env(env)


def test_every_setting_is_documented_with_an_environment_name() -> None:
    names = set(Settings.__dataclass_fields__)
    assert names == set(SETTING_DOCS)
    envs = {Settings.env_name(n) for n in names}
    assert len(envs) == len(names)
    assert all(e.startswith("WS_") or e == "REDIS_URL" for e in envs)


def test_the_server_refuses_to_start_with_a_bad_setting() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reference_server"],
        cwd=ROOT,
        env={"WS_RATE_BURST": "lots", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "WS_RATE_BURST" in proc.stderr


def test_every_default_is_within_its_bound_and_past_it_is_refused_naming_the_key() -> None:
    defaults = Settings()
    for name, most in SETTING_MAXIMA.items():
        value = getattr(defaults, name)
        assert value is None or value <= most  # None: chosen from other settings
        kind = int if value is None else type(value)
        with pytest.raises(SettingsError, match=Settings.env_name(name) + " must be at most"):
            Settings(**{name: kind(most * 2)})
    assert Settings(max_json_depth=1000, idle_disconnect_seconds=86_400).max_json_depth == 1000


def test_a_bad_boolean_names_the_words_accepted() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"WS_AUTH_REQUIRED": "maybe"})
    assert "WS_AUTH_REQUIRED" in str(caught.value) and "number" not in str(caught.value)
    assert all(word in str(caught.value) for word in ("true", "false", "yes", "no", "on", "off"))


def test_a_bad_boolean_stops_the_server_with_a_sentence_about_booleans() -> None:
    # Review 11: configuration.md: "Booleans accept true/false, 1/0, yes/no, on/off"; the
    # server said "must be a number".
    done = subprocess.run(
        [sys.executable, "-m", "reference_server"],
        cwd=ROOT,
        env={**os.environ, "WS_AUTH_REQUIRED": "maybe"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "WS_AUTH_REQUIRED" in done.stderr
    assert "number" not in done.stderr, done.stderr
