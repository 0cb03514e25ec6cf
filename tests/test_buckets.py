"""The token bucket shared by the client's limiter and the emulator: refill, waits, resize."""

from __future__ import annotations

import pytest

from pipeline.buckets import TokenBucket


def test_a_bucket_starts_full_and_refills_at_a_sixtieth_per_second() -> None:
    """A 120-per-minute bucket refills 2 per second, up to its capacity and no further."""
    bucket = TokenBucket(120, now=0.0)
    bucket.level -= 120
    bucket.refill(10.0)
    assert pytest.approx(20.0) == bucket.level
    bucket.refill(1_000.0)
    assert 120.0 == bucket.level


def test_time_going_backwards_refills_nothing() -> None:
    """A `now` before the last refill leaves the level and the clock as they are."""
    bucket = TokenBucket(60, now=5.0)
    bucket.level = 0.0
    bucket.refill(4.0)
    assert (0.0, 5.0) == (bucket.level, bucket.updated)


@pytest.mark.parametrize(
    ("level", "amount", "expected_s"),
    [
        pytest.param(60.0, 10, 0.0, id="enough"),
        pytest.param(0.0, 10, 10.0, id="empty"),
        pytest.param(-30.0, 10, 40.0, id="overdrawn"),
        pytest.param(0.0, 600, 60.0, id="more-than-capacity-waits-for-a-full-bucket"),
    ],
)
def test_wait_is_the_time_to_hold_the_amount(level: float, amount: float, expected_s: float) -> None:
    """wait_s is how long the refill takes to cover `amount`, capped at the capacity."""
    bucket = TokenBucket(60, now=0.0)
    bucket.level = level
    assert pytest.approx(expected_s) == bucket.wait_s(amount)


def test_reset_is_the_time_to_full() -> None:
    """reset_s is how long until the bucket is full again."""
    bucket = TokenBucket(600, now=0.0)
    bucket.level = 500.0
    assert pytest.approx(10.0) == bucket.reset_s()


def test_resize_keeps_the_level_down_to_the_new_capacity_and_changes_the_rate() -> None:
    """A lower limit caps the level; the refill rate follows the new limit."""
    bucket = TokenBucket(600, now=0.0)
    bucket.resize(60)
    assert (60.0, 60.0) == (bucket.capacity, bucket.level)
    bucket.level = 0.0
    bucket.refill(1.0)
    assert pytest.approx(1.0) == bucket.level
    bucket.resize(120)
    assert pytest.approx(1.0) == bucket.level
    assert pytest.approx(59.5) == bucket.wait_s(120)
