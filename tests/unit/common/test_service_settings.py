"""common.service_settings: the connection settings the service client and steps need, as a protocol.

The agent's settings type must keep providing every member with its type: the client reads them by name, and
neither side may import the other's settings to find out at run time.
"""

from __future__ import annotations

import typing

from agent.config import AgentConfig
from common.service_settings import ServiceSettings


def _members() -> dict[str, object]:
    return {name: typing.get_type_hints(prop.fget)["return"]
            for name, prop in vars(ServiceSettings).items() if isinstance(prop, property)}


def test_the_protocol_is_what_a_connection_needs() -> None:
    assert set(_members()) == {"url", "infra_env_id", "agent_version", "cacert", "insecure", "token",
                               "proxies"}


def test_the_agents_settings_provide_every_member_with_its_type() -> None:
    config = AgentConfig(url="https://svc.example:8090", infra_env_id="e", agent_version="v", cacert="/ca.pem",
                         insecure=True, token="t")
    hints = typing.get_type_hints(AgentConfig)
    for name, kind in _members().items():
        assert name in hints, name
        assert hints[name] == kind, (name, hints[name], kind)
        assert getattr(config, name) is not None
