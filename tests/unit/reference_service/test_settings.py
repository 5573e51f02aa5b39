"""The reference service's settings table (reference_service.settings): --help, the defaults and the resolution
agree with it; a flag wins over the environment, and a variable that does not parse is a usage error naming it."""

from __future__ import annotations

import dataclasses

import pytest

from common.errors import ConfigError
from reference_service.cli import parser
from reference_service.settings import TABLE, Settings, admin_token_given, resolve


def test_help_shows_every_flag_and_variable_of_the_table() -> None:
    text = parser().format_help()
    for s in TABLE:
        for shown in (s.flag, s.env):
            if shown:
                assert shown in text, shown


def test_settings_has_each_setting_with_the_tables_default() -> None:
    assert {f.name for f in dataclasses.fields(Settings)} == {s.name for s in TABLE}
    defaults = Settings()
    for s in TABLE:
        if s.name != "admin_token":  # generated when none is given
            assert getattr(defaults, s.name) == s.default, s.name
    resolved = resolve(parser().parse_args([]), env={})
    assert dataclasses.replace(resolved, admin_token="x") == dataclasses.replace(defaults, admin_token="x")
    assert len(resolved.admin_token) > 20 and not admin_token_given(parser().parse_args([]), env={})


def test_a_flag_wins_over_the_environment() -> None:
    env = {"REFERENCE_SERVICE_DB": "/env.db", "AGENT_INVENTORY_MAX_SIZE": "4096", "ENABLE_VIRTUAL_INTERFACES": "True",
           "DISABLED_STEPS": "ntp-synchronizer, ,tang-connectivity-check",
           "REFERENCE_SERVICE_PREINSTALL_IMAGES": "quay.io/a:1, quay.io/b:2,quay.io/a:1",
           "REFERENCE_SERVICE_OS_IMAGE_RATE": "1000", "REFERENCE_SERVICE_ADMIN_TOKEN": "env-admin"}
    got = resolve(parser().parse_args(["--db", "/flag.db", "--port", "0"]), env=env)
    assert (got.db, got.port, got.inventory_max_size, got.enable_virtual_interfaces) == ("/flag.db", 0, 4096, True)
    assert got.disabled_steps == frozenset({"ntp-synchronizer", "tang-connectivity-check"})
    assert got.preinstall_images == ("quay.io/a:1", "quay.io/b:2") and got.os_image_rate == 1000
    assert got.admin_token == "env-admin" and admin_token_given(None, env)
    assert resolve(parser().parse_args(["--inventory-max-size", "8"]), env=env).inventory_max_size == 8


def test_a_variable_that_does_not_parse_is_named() -> None:
    with pytest.raises(ConfigError, match="AGENT_INVENTORY_MAX_SIZE: 'lots' is not a whole number"):
        resolve(parser().parse_args([]), env={"AGENT_INVENTORY_MAX_SIZE": "lots"})
