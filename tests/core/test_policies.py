from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.backoff import Backoff
from gateway.core.flow import Outbox, RateDecision, TokenBucket
from gateway.core.resume import is_recoverable


def test_outbox_bounds_events_but_never_control() -> None:
    box: Outbox[str] = Outbox(2)
    assert box.offer_event("e1") and box.offer_event("e2")
    assert box.full
    assert not box.offer_event("e3")  # refused: the shell closes with 4008
    box.put_control("pong")  # control replies are never dropped (defect 9)
    assert box.take() == ["e1", "e2", "pong"]
    assert not box.full and len(box) == 0


def test_outbox_counts_events_only() -> None:
    box: Outbox[str] = Outbox(1)
    box.put_control("c")
    assert box.offer_event("e") and box.full
    box.put_control("c2")
    assert box.events == 1 and len(box) == 3
    assert box.take() == ["c", "e", "c2"] and not box.full
    with pytest.raises(ValueError, match="limit"):
        Outbox(0)


def test_token_bucket_unlimited() -> None:
    bucket = TokenBucket(0, 1, 0.0)
    assert all(bucket.take(0.0) == RateDecision.ALLOW for _ in range(1000))
    assert bucket.retry_after() == 0


@given(st.integers(0, 40), st.floats(0, 1, exclude_max=True))
def test_backoff_is_full_jitter_capped(attempt: int, rand: float) -> None:
    b = Backoff(base=0.1, cap=5.0)
    assert 0 <= b.delay(attempt, rand) <= 5.0
    assert b.ceiling(attempt) == min(5.0, 0.1 * 2**attempt)


def test_backoff_sequence_doubles() -> None:
    b = Backoff(base=3.0, cap=30.0)
    assert [b.ceiling(n) for n in range(5)] == [3, 6, 12, 24, 30]
    assert b.ceiling(10**6) == 30
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)


def test_resume_recoverable() -> None:
    assert is_recoverable((10, 0), held=True, floor=(5, 0))
    assert not is_recoverable((4, 9), held=False, floor=(5, 0))  # trimmed, or a lost stream
    assert is_recoverable((0, 0), held=False, floor=(0, 0))  # from the start, nothing trimmed
    assert not is_recoverable((0, 0), held=False, floor=(5, 0))
