"""DATADIR/control.json: created once with a random password, 0600, read back strictly."""
from __future__ import annotations

import json
import stat

import pytest

from core.control.config import (ControlConfig, ControlConfigError, control_path, load_or_create_control_config,
                                 read_control_config, save_control_config)


def test_first_start_creates_a_private_file_with_a_random_password(tmp_path):
    config = load_or_create_control_config(tmp_path, rng=lambda n: b"\x01" * n)
    assert (config.address, config.port) == ("127.0.0.1", 7650)
    assert config.password == "AQEBAQEBAQEBAQEBAQEBAQEB"
    path = control_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"address": "127.0.0.1", "port": 7650, "password": config.password}


def test_password_is_kept_across_starts_and_differs_between_datadirs(tmp_path):
    first = load_or_create_control_config(tmp_path / "a")
    assert load_or_create_control_config(tmp_path / "a") == first
    assert load_or_create_control_config(tmp_path / "b").password != first.password
    assert len(first.password) == 24


def test_router_settings_override_and_are_written_back(tmp_path):
    first = load_or_create_control_config(tmp_path)
    second = load_or_create_control_config(tmp_path, address="::1", port=7700)
    assert (second.address, second.port, second.password) == ("::1", 7700, first.password)
    assert read_control_config(tmp_path) == second


def test_save_and_read(tmp_path):
    config = ControlConfig("0.0.0.0", 0, "secret")
    save_control_config(tmp_path, config)
    assert read_control_config(tmp_path) == config
    assert config.connect_host() == "127.0.0.1"
    assert ControlConfig("::", 1, "x").connect_host() == "::1"


@pytest.mark.parametrize("content", [
    "", "{", "[]", '"x"', '{"port": 7650}', '{"port": "7650", "password": "x"}', '{"port": 70000, "password": "x"}',
    '{"port": true, "password": "x"}', '{"password": ""}', '{"password": "x", "address": "localhost"}',
    '{"password": "x", "address": 1}', '{"password": 5}',
])
def test_bad_files_are_refused_clearly(tmp_path, content):
    control_path(tmp_path).write_text(content)
    with pytest.raises(ControlConfigError, match="control.json"):
        read_control_config(tmp_path)
    with pytest.raises(ControlConfigError):
        load_or_create_control_config(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(ControlConfigError, match="does not exist"):
        read_control_config(tmp_path / "nowhere")


def test_bad_override_is_refused(tmp_path):
    with pytest.raises(ControlConfigError):
        load_or_create_control_config(tmp_path, address="example.com")
    with pytest.raises(ControlConfigError):
        load_or_create_control_config(tmp_path, port=65536)
