"""The argparse parser of every command line: its errors are one line and a hint (common.usage), not usage and exit."""

from __future__ import annotations

import argparse
from typing import NoReturn

from common.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`ConfigError` (one line and a hint), not usage and exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message, hint=f"see '{self.prog} --help'")
