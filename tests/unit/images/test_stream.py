"""``images.stream.next_full_wait``: how long the pump leaves a spliced source's full pipe to the decoder."""

from __future__ import annotations

import itertools

import pytest

from sluicegate.images.stream import DRAIN_SHARE, MAX_FULL_WAIT, next_full_wait

MIB = 1024 * 1024
BASE = MIB / 100e6 / 4  # full_wait of a 1 MiB pipe


def test_first_full_pipe_waits_the_base() -> None:
    assert next_full_wait(MIB, None, BASE, BASE, MIB) == BASE


def test_waits_until_most_of_the_pipe_is_read_at_the_measured_rate() -> None:
    # the decoder read 600 KiB in 3 ms (~205 MB/s): leave the pipe until 3/4 of it should be read
    wait = next_full_wait(600 * 1024, 0.003, BASE, BASE, MIB)
    assert wait == pytest.approx(DRAIN_SHARE * MIB / (600 * 1024 / 0.003))
    assert BASE < wait < MAX_FULL_WAIT


def test_a_fast_decoder_is_never_left_less_than_the_base() -> None:
    assert next_full_wait(MIB, 0.0001, BASE, BASE, MIB) == BASE


def test_a_slow_decoder_is_left_at_most_the_cap() -> None:
    assert next_full_wait(4096, 0.01, BASE, BASE, MIB) == MAX_FULL_WAIT


def test_a_decoder_that_read_nothing_backs_off_to_the_cap() -> None:
    waits = [BASE]
    for _ in range(10):
        waits.append(next_full_wait(0, 0.01, waits[-1], BASE, MIB))
    assert waits[1] == 2 * BASE
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert waits[-1] == MAX_FULL_WAIT


def test_a_pipe_read_empty_goes_back_to_the_base() -> None:
    """The decoder may have waited on an empty pipe: the rate is a lower bound, never stretched further."""
    slow = next_full_wait(MIB, 0.02, MAX_FULL_WAIT, BASE, MIB)  # a whole pipe in 20 ms: it may have run dry
    assert slow == BASE
    assert next_full_wait(MIB - 32 * 1024, 0.02, MAX_FULL_WAIT, BASE, MIB) == BASE
    assert next_full_wait(MIB // 2, 0.02, BASE, BASE, MIB) > BASE  # half a pipe in 20 ms: a real rate
