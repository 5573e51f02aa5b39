"""Names the daemon, the fork server and the step processes agree on, in a module that imports nothing: the
fork server stays resident between polls and every step is a copy of it, so what it imports costs memory all
the time (tests/e2e/test_packaging.py keeps it lean).
"""

#: Environment of every step process (inherited by all it starts): the daemon's pid, which the step process
#: watches so that it dies with the daemon, and the daemon's state directory, by which a restarted daemon
#: finds what a previous life left running (agent.state.reap_leftovers).
PARENT_ENV, MARK_ENV = "ASSISTED_AGENT_PID", "ASSISTED_AGENT_STEP_OF"
#: The fork server's end of its socket to the daemon.
FORK_SERVER_FD = "ASSISTED_AGENT_FORK_SERVER_FD"
#: A control packet between the daemon and the fork server is a few dozen bytes; requests go through pipes.
MAX_PACKET = 4096
