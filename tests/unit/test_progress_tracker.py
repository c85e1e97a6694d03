"""The progress tracker folds events into rows; the live table and Ctrl-C read it."""

from __future__ import annotations

from reconciler import progress

Kind = progress.Kind
JOB = progress.model_subject("aaaaaaaaaaaa")


def test_elapsed_counts_from_the_start_of_a_job_not_from_its_queueing() -> None:
    tracker = progress.Tracker()
    tracker.apply(progress.Event(Kind.QUEUED, JOB), now=10.0)
    tracker.apply(progress.Event(Kind.RUNNING, JOB), now=25.0)
    tracker.apply(progress.Event(Kind.DONE, JOB, detail="Score 0.9"), now=27.5)
    row = tracker.rows[JOB]
    assert (row.state, row.elapsed(now=99.0), row.detail) == (Kind.DONE, 2.5, "Score 0.9")


def test_a_finished_row_keeps_its_state_whatever_comes_later() -> None:
    tracker = progress.Tracker()
    tracker.apply(progress.Event(Kind.RUNNING, JOB), now=0.0)
    tracker.apply(progress.Event(Kind.FAILED, JOB, detail="boom"), now=1.0)
    tracker.apply(progress.Event(Kind.HEARTBEAT, JOB), now=2.0)
    tracker.apply(progress.Event(Kind.RUNNING, JOB), now=3.0)
    assert tracker.rows[JOB].state is Kind.FAILED
    assert tracker.rows[JOB].elapsed(now=50.0) == 1.0


def test_a_backend_line_naming_a_running_job_makes_it_polling() -> None:
    tracker = progress.Tracker()
    tracker.apply(progress.Event(Kind.RUNNING, JOB), now=0.0)
    tracker.apply(progress.Event(Kind.ROLLOUT, "solo"), now=0.0)
    assert tracker.note("submitted BES job 42 for model aaaaaaaaaaaa", now=1.0)
    assert tracker.note("solo: traffic retrain-aaaa 10%", now=1.0)
    assert not tracker.note("an unrelated line", now=1.0)
    assert tracker.rows[JOB].state is Kind.POLLING
    assert tracker.rows[JOB].detail == "submitted BES job 42 for model aaaaaaaaaaaa"
    assert tracker.rows["solo"].state is Kind.ROLLOUT  # a rollout step stays a rollout


def test_interrupted_lists_what_finished_then_what_was_stopped() -> None:
    tracker = progress.Tracker()
    other, queued = progress.model_subject("bbbbbbbbbbbb"), progress.model_subject("c" * 12)
    for subject in (JOB, other, queued):
        tracker.apply(progress.Event(Kind.QUEUED, subject), now=0.0)
    tracker.apply(progress.Event(Kind.RUNNING, JOB), now=1.0)
    tracker.apply(progress.Event(Kind.DONE, JOB), now=3.0)
    tracker.apply(progress.Event(Kind.RUNNING, other), now=3.0)
    tracker.apply(progress.Event(Kind.STOPPED, other), now=4.0)
    assert tracker.interrupted(now=9.0) == [
        f"finished: {JOB}: done in 2.0s",
        f"stopped: {other} (running for 1.0s)",
        f"stopped: {queued} (queued for 9.0s)",
    ]
