"""What a connection to the service is configured with, as a protocol: light to import (no requests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class ServiceSettings(Protocol):
    """What a connection to the service needs (agent.config.AgentConfig has it): the client is the agent's and
    its steps', and neither package may import the other's settings type."""

    @property
    def url(self) -> str: ...
    @property
    def infra_env_id(self) -> str: ...
    @property
    def agent_version(self) -> str: ...
    @property
    def cacert(self) -> str | None: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def token(self) -> str: ...
    @property
    def proxies(self) -> Mapping[str, str]: ...
