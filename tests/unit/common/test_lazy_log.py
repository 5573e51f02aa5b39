"""Loggers that load the logging package at their first record (common.lazy_log): nothing logged, nothing loaded;
the configuration applied before the first record, whichever thread writes it; held warnings written first."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = """
import json, sys, threading
from common.lazy_log import LOGGING, WARNING, LazyLogger

log = LazyLogger("agent")
loaded = ["logging" in sys.modules]

def setup():
    import logging
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(filename)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    print("configured")

LOGGING.configure(setup)
LOGGING.hold("agent", WARNING, "held %s", "first")
loaded.append("logging" in sys.modules)
worker = threading.Thread(target=lambda: log.info("from a thread"))
worker.start()
worker.join()
log.info("then %s", "this")
LOGGING.apply()  # nothing waits: nothing more
print(json.dumps(loaded))
"""


def test_logging_is_loaded_and_configured_at_the_first_record_and_held_records_come_first() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    lines = out.stdout.splitlines()
    assert json.loads(lines[-1]) == [False, False]  # neither the logger nor the held record loaded it
    assert lines[:-1] == ["configured", "WARNING agent lazy_log.py: held first", "INFO agent <string>: from a thread",
                          "INFO agent <string>: then this"]  # the caller's file, not this module's, for a record


def test_the_daemons_token_warning_waits_for_the_first_record_and_is_written_even_without_one() -> None:
    code = """
import sys
from agent.lifecycle import Lifecycle
from agent.notify import Notifier
from common.lazy_log import LOGGING
def setup():
    import logging
    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    print("configured")
LOGGING.configure(setup)
life = Lifecycle(Notifier(""))
life.start("http://h", "", "")
print("started", "logging" in sys.modules)
LOGGING.apply()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["started False", "configured",
                                       "Agent Authentication Token not set (PULL_SECRET_TOKEN is empty)"]


def test_without_a_configuration_waiting_a_held_record_is_written_at_once() -> None:
    code = """
import logging, sys
logging.basicConfig(stream=sys.stdout, format="%(message)s")
from common.lazy_log import LOGGING, WARNING
LOGGING.hold("agent", WARNING, "now")
print("after")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["now", "after"]
