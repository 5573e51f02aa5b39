"""The ground both programs stand on: errors, limits, host access, argument parsing, the service client.

Nothing here imports ``agent``, ``steps``, ``inventory``, ``rules``, ``reference_service`` or ``swarm``
(tests/unit/test_layering.py), so each of them can use it without pulling in another.
"""

__version__ = "0.1.0"
