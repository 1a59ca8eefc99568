"""Progress of running trainings: a line per training with step, images/s and ETA, compiling, phases, a stall."""

import io

from autoloss.search_report import SearchProgress
from autoloss.training_progress import STALL_SECONDS, RunningTrainings, duration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_each_training_shows_its_step_speed_and_eta_and_a_silent_one_turns_stalled():
    shown, clock = [], Clock()
    trainings = RunningTrainings(shown.append, clock=clock)
    trainings.update("a", {"phase": "start", "label": "gen 1 proxy x*y", "attempt": 1})
    trainings.update("b", {"phase": "start", "label": "final baseline", "attempt": 2})
    trainings.update("a", {"phase": "data"})
    assert shown[-1] == ["gen 1 proxy x*y: loading data (0s)", "final baseline: starting (0s) [attempt 2]"]
    trainings.update("a", {"phase": "train", "step": 0, "steps": 150})
    clock.now += 30
    assert trainings.lines()[0] == "gen 1 proxy x*y: compiling (30s)"
    trainings.update("a", {"phase": "train", "step": 40, "steps": 150, "images_per_second": 12.34,
                           "seconds_per_step": 0.5})
    trainings.update("b", {"phase": "train", "step": 100, "steps": 1000, "worker": "tcp://10.0.0.7:4000"})
    clock.now += 5
    assert trainings.lines() == ["gen 1 proxy x*y: step 40/150, 12.3 images/s, ETA 50s",
                                 "final baseline: step 100/1000 [attempt 2] on tcp://10.0.0.7:4000"]
    clock.now += STALL_SECONDS + 1
    trainings.refresh()
    assert shown[-1][0] == f"gen 1 proxy x*y: STALLED, no report for {duration(STALL_SECONDS + 6)} (last: step 40/150)"
    trainings.end("a")
    assert len(shown[-1]) == 1 and shown[-1][0].startswith("final baseline: STALLED")


def test_a_training_that_reports_rarely_is_stalled_only_after_three_of_its_silences():
    clock = Clock()
    trainings = RunningTrainings(lambda lines: None, clock=clock)
    trainings.update("f", {"phase": "final", "steps": 9000, "label": "final found"})
    clock.now += 600
    trainings.update("f", {"phase": "train", "step": 900, "steps": 9000, "seconds_per_step": 0.66})
    clock.now += 1000
    assert trainings.lines()[0].startswith("final found: step 900/9000")
    clock.now += 900
    assert trainings.lines()[0].startswith("final found: STALLED, no report for 31m40s")


def test_the_search_progress_draws_a_line_per_running_training_and_clears_them():
    stream = io.StringIO()
    progress = SearchProgress(True, stream)
    progress.stage("gen 1 proxy", 3, unit="training")
    progress.trainings(["gen 1 proxy a: step 10/150", "gen 1 proxy b: compiling (3s)"])
    assert "gen 1 proxy a: step 10/150" in stream.getvalue() and "compiling (3s)" in stream.getvalue()
    progress.trainings(["gen 1 proxy b: step 20/150"])  # fewer lines: one closes at once
    assert len(progress._lines) == 1
    progress.close()
    assert progress._lines == [] and progress._bar is None
    quiet = SearchProgress(False, io.StringIO())
    quiet.trainings(["x"])
    assert quiet.stream.getvalue() == ""
