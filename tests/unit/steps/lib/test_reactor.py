"""steps.lib.reactor: timers in time order, readable sockets served, a deadline that holds."""

from __future__ import annotations

import socket
import time

from steps.lib.reactor import Reactor


def test_timers_run_in_time_order_not_in_the_order_they_were_added() -> None:
    reactor, ran = Reactor(), []
    now = time.monotonic()
    reactor.call_at(now + 0.03, lambda: ran.append("third"))
    reactor.call_at(now + 0.01, lambda: ran.append("first"))
    reactor.call_at(now + 0.02, lambda: ran.append("second"))
    reactor.call_at(now + 0.01, lambda: ran.append("first, added later"))  # equal times: added order
    reactor.run(lambda: len(ran) == 4, now + 2)
    assert ran == ["first", "first, added later", "second", "third"]


def test_run_stops_at_the_deadline_with_later_timers_unrun() -> None:
    reactor, ran = Reactor(), []
    start = time.monotonic()
    reactor.call_at(start + 10, lambda: ran.append("late"))
    reactor.run(lambda: False, start + 0.1)
    assert ran == [] and 0.09 <= time.monotonic() - start < 2


def test_run_returns_as_soon_as_finished() -> None:
    reactor, ran = Reactor(), []
    start = time.monotonic()
    reactor.call_at(start, lambda: ran.append(1))
    reactor.call_at(start + 5, lambda: ran.append(2))
    reactor.run(lambda: bool(ran), start + 10)
    assert ran == [1] and time.monotonic() - start < 2


def test_a_readable_socket_is_served_before_a_due_timer_gives_up_on_it() -> None:
    left, right = socket.socketpair()
    with left, right:
        reactor, events = Reactor(), []
        reactor.add_reader(left, lambda s: events.append(("read", s.recv(10))))
        right.send(b"answer")
        # the timer is already due when run() starts: the queued answer must still count first
        reactor.call_at(time.monotonic() - 1, lambda: events.append(("timer", b"")))
        reactor.run(lambda: len(events) == 2, time.monotonic() + 2)
        assert events == [("read", b"answer"), ("timer", b"")]
