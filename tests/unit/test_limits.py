"""SPEC section 4: creation rate caps, global and per host, with time as an argument."""

from clat_eamt.core.limits import CreationLimiter, TokenBucket
from clat_eamt.core.model import Reason


def test_bucket_starts_full_and_refills_at_its_rate():
    bucket = TokenBucket(rate=2, burst=4)
    assert bucket.available(0) == 4
    bucket.take(0, 4)
    assert bucket.available(0) == 0
    assert bucket.available(1) == 2
    assert bucket.available(100) == 4


def test_clock_going_backwards_adds_no_tokens():
    bucket = TokenBucket(rate=1, burst=5)
    bucket.take(10, 5)
    assert bucket.available(3) == 0


def test_global_limit_binds_before_host_limit_when_smaller():
    limiter = CreationLimiter(rate=1, burst=2, host_rate=1, host_burst=10)
    assert limiter.allowance("tv", 0) == (2, Reason.RATE_LIMITED)


def test_host_limit_is_per_host():
    limiter = CreationLimiter(rate=100, burst=100, host_rate=1, host_burst=3)
    limiter.consume("tv", 0, 3)
    assert limiter.allowance("tv", 0) == (0, Reason.HOST_RATE_LIMITED)
    assert limiter.allowance("console", 0)[0] == 3
    assert limiter.allowance(None, 0)[0] == 97


def test_allowance_changes_nothing():
    limiter = CreationLimiter(rate=1, burst=5, host_rate=1, host_burst=5)
    for _ in range(3):
        assert limiter.allowance("tv", 0)[0] == 5


def test_host_table_is_bounded():
    limiter = CreationLimiter(rate=1000, burst=1000, host_rate=1, host_burst=1, max_hosts=4)
    for i in range(50):
        limiter.consume(f"host{i}", 0, 1)
    assert limiter.tracked_hosts == 4
