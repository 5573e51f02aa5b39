"""OpenShift Assisted Installer on-host agent, in Python: a drop-in replacement for the Go agent."""

__version__ = "0.1.0"
