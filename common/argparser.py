"""The argparse parser of every command line: its errors are one line and a hint (common.usage), not usage and exit."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from common.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`ConfigError` (one line and a hint), not usage and exit."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        """argparse's own, given the width shutil.get_terminal_size() would give: argparse makes one for every
        flag added, and would import shutil (bz2, lzma, zlib) for it on the agent's way to its first register."""
        return self.formatter_class(prog=self.prog, width=terminal_columns() - 2)  # type: ignore[call-arg]

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message, hint=f"see '{self.prog} --help'")


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80
