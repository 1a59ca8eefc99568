"""CPU-time budgets: enforced in the main thread and in worker threads, nested, never late."""

import contextlib
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from symbolic.time_budget import BudgetExceeded, time_budget


def _spin_forever():
    count = 0
    while True:
        count += 1


def _interrupted(seconds: float) -> bool:
    try:
        with time_budget(seconds):
            _spin_forever()
    except BudgetExceeded:
        return True
    return False


def test_a_runaway_loop_is_stopped_in_the_main_thread():
    assert _interrupted(0.05)


def test_a_runaway_loop_is_stopped_in_worker_threads():
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(_interrupted, [0.05, 0.05, 0.05])) == [True, True, True]


def test_work_within_the_budget_finishes_and_leaves_nothing_behind():
    with time_budget(5.0):
        total = sum(range(1000))
    assert total == 499500
    for _ in range(200):  # many short budgets: none fires later, outside its block
        with time_budget(5.0):
            pass
    count = 0
    for _ in range(200_000):
        count += 1
    assert count == 200_000


def test_the_earliest_of_nested_budgets_wins():
    with pytest.raises(BudgetExceeded), time_budget(60.0), time_budget(0.05):
        _spin_forever()
    with pytest.raises(BudgetExceeded), time_budget(0.05), time_budget(60.0):
        _spin_forever()


def test_library_code_catching_exception_cannot_swallow_it():
    assert issubclass(BudgetExceeded, BaseException) and not issubclass(BudgetExceeded, Exception)

    def stubborn():
        while True:
            with contextlib.suppress(Exception):  # what careless library code does
                _spin_forever()

    with pytest.raises(BudgetExceeded), time_budget(0.05):
        stubborn()


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan")])
def test_a_budget_must_be_positive(seconds):
    with pytest.raises(ValueError, match="positive"):
        time_budget(seconds)


def test_an_exception_lost_in_a_finalizer_is_raised_again(monkeypatch):
    """Python ignores an exception raised in __del__ (or a garbage-collector callback); the budget fires again."""
    lost = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: lost.append(unraisable.exc_type))

    def spin(n):
        total = 0
        while total < n:
            total += 1

    class Finalized:
        def __del__(self):
            spin(20_000)

    with pytest.raises(BudgetExceeded), time_budget(0.05):
        while True:
            Finalized()  # half of the time is spent in __del__
            spin(20_000)
    assert set(lost) <= {BudgetExceeded}
