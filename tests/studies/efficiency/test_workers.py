"""Several study workers: a unit is claimed by one live process; a dead worker's claim is taken over;
work_through runs every unit once and waits for units other workers hold."""
import os
import subprocess
import sys

from rsdix.studies.efficiency.workers import Claims, work_through


def test_claims_are_exclusive_and_stale_ones_are_taken_over(tmp_path):
    claims = Claims(tmp_path / "claims")
    assert claims.take("a") and claims.take("a")            # ours, again
    (tmp_path / "claims" / "b").write_text(str(os.getppid()))   # a live process holds b
    assert not claims.take("b")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "claims" / "c").write_text(dead.stdout.strip())  # its process is gone
    assert claims.take("c") and claims.holder("c") == os.getpid()
    claims.release("a")
    assert not (tmp_path / "claims" / "a").exists()
    claims.release("b")                                      # not ours: left alone
    assert (tmp_path / "claims" / "b").exists()


def test_work_through_runs_each_unit_once_skipping_finished_and_stopping(tmp_path):
    claims, done, ran = Claims(tmp_path / "claims"), {"u1"}, []

    def run(unit):
        ran.append(unit)
        done.add(unit)

    assert work_through(["u0", "u1", "u2"], name=str, finished=lambda: set(done), run=run, claims=claims)
    assert ran == ["u0", "u2"] and not any((tmp_path / "claims").iterdir())
    ran.clear()
    assert not work_through(["u3", "u4"], name=str, finished=lambda: set(done), run=run, claims=claims,
                            stop=lambda unit: unit == "u4")
    assert ran == ["u3"]


def test_work_through_waits_for_a_unit_another_worker_holds(tmp_path):
    claims, done = Claims(tmp_path / "claims"), set()
    (tmp_path / "claims" / "x").write_text(str(os.getppid()))   # held by a live process
    polls = []

    def finished():
        polls.append(1)
        if len(polls) > 3:          # the other worker finishes after a few polls
            done.add("x")
        return set(done)

    assert work_through(["x"], name=str, finished=finished, run=lambda u: None, claims=claims, poll_s=0.01)
    assert "x" in done
