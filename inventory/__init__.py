"""The host's hardware and network inventory, field for field as the Go agent's ``models.Inventory``.

One small module per collector (``cpu``, ``memory``, ``disks``, ...), each a ``collect(host, options)``
returning the inventory fields it owns; :mod:`inventory.collect` runs them isolated from each other.
Everything is read through :class:`common.host.Host`, so the same code runs on this machine, under ``/host``
in the container image, and on fixture trees recorded from other machines.
"""
