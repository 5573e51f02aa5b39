"""OpenShift Assisted Installer on-host agent, in Python: a drop-in replacement for the Go agent."""

from common import __version__

__all__ = ["__version__"]
