"""The injectable clock: every time window is tested by moving it, never by sleeping."""

from __future__ import annotations

from authbridge.testing import FixedClock

FakeClock = FixedClock
"""The public testing kit's clock: ``clock()`` is now (UTC, 2030-01-01 by default) and
``clock.advance(seconds | timedelta)`` moves it. The shared ``clock`` fixture is one."""

__all__ = ["FakeClock"]
