"""A third-party step package, as another project would ship it, for the agent's plugin tests."""
