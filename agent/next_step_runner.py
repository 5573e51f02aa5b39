"""``next_step_runner``: the poll loop of the agent image, started by the host's agent (agent.launcher).

It is the daemon's poll loop without registration, as the Go image's next_step_runner: the host's agent has
registered and passes the ids the service gave it (``--host-id``, ``--infra-env-id``) and the image the service
named (``--agent-version``, reported in every request). It exits 0 when the service says exit, after a
successful ``upgrade-agent`` (the host's agent registers again and runs the new image) and when the host must
register again (a poll answered 404, or 15 minutes of failed polls). Steps run as in the daemon: each in its
own child process of the image's Python, which starts in tens of milliseconds (no frozen archive to unpack).
"""

from __future__ import annotations

from agent.daemon import Daemon
from agent.identity import derive_host_id


class NextStepRunner(Daemon):
    def _register(self) -> bool:
        if self.host_id:  # the poll loop wants a new registration: that is the host's agent's job
            self.request_stop("the host's agent registers again")
            return False
        self.host_id = self.config.host_id or derive_host_id(self.host)[0]
        self.infra_env_id = self.config.infra_env_id
        self.notifier.status(f"host {self.host_id}: polling for steps")
        return True
