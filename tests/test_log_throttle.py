"""One log line per kind and interval; the next line says how many were held back."""

from __future__ import annotations

from service.observability.log_throttle import LogThrottle


def test_first_line_at_once_then_one_per_interval_with_the_count() -> None:
    now = [100.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    assert throttle.admit("down") == 0  # the first line of a kind is written at once
    assert throttle.admit("busy") == 0  # kinds are counted apart
    for _ in range(500):
        now[0] += 0.01
        assert throttle.admit("down") is None
    now[0] = 109.9
    assert throttle.admit("down") is None
    now[0] = 110.0
    assert throttle.admit("down") == 501  # the next line says how many were not written
    assert throttle.admit("down") is None
    now[0] = 500.0
    assert throttle.admit("down") == 1
    assert throttle.admit("busy") == 0
