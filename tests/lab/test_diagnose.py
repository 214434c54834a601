"""What a crashed run's verdict says: the exception that ended its last traceback, not a launcher's box."""

from __future__ import annotations

import pytest

from labmind.lab.diagnose import crash_cause, error_line
from labmind.store import RunRow

TORCHRUN = """[rank0]: Traceback (most recent call last):
[rank0]:   File "/w/train_gpt.py", line 2359, in <module>
[rank0]:     inputs = next(loader)
[rank0]: FileNotFoundError: No files found for pattern: /data/fineweb_train_*.bin
[rank0]:[W1207 ProcessGroupNCCL.cpp:1575] Warning: WARNING: destroy_process_group() was not called
E1207 api.py:986] failed (exitcode: 1) local_rank: 0 (pid: 590) of binary: /venv/bin/python
Traceback (most recent call last):
  File "/venv/bin/torchrun", line 10, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train_gpt.py FAILED
============================================================"""

CHAINED = """Traceback (most recent call last):
  File "a.py", line 1, in <module>
KeyError: 'a'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 3, in <module>
    next(it)
StopIteration"""


@pytest.mark.parametrize(("log", "expected"), [
    (TORCHRUN, "FileNotFoundError: No files found for pattern: /data/fineweb_train_*.bin"),
    (CHAINED, "StopIteration"),  # the last traceback's exception, whatever its class is called
    ('[default0]:Traceback (most recent call last):\n[default0]:  File "x", line 1\n'
     "[default0]:torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised",
     "torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised"),
    ("step 3 RelativeError: 0.001\nUserWarning: lr is large\nloss: nan", None),  # no traceback: no exception
    ("data missing: shard 7", None),  # SystemExit('...') prints its message alone
])
def test_the_exception_of_the_last_traceback_is_named(log: str, expected: str | None) -> None:
    assert error_line(log) == expected


def _crashed(log_tail: str) -> RunRow:
    return RunRow(id=1, experiment_id=1, purpose="baseline", seed=0, status="done", slot="cpu0", token="t",
                  started_at=0.0, ended_at=1.0, exit_code=1, outcome="crashed", metric=None, self_reported=None,
                  holdout=None, secondary={}, flags=[], log_path=None, log_tail=log_tail, sandbox="none",
                  requeued_from=None)


def test_a_limit_labmind_enforced_is_said_by_its_own_line() -> None:
    log = ("Traceback (most recent call last):\n  File \"t.py\", line 1\nRuntimeError: can't start new thread\n"
           "labmind: killed: the run tried to run more than 4096 processes and threads ([run] processes)")
    assert crash_cause(_crashed(log)) is None  # the verdict then quotes the last line, which names the limit
    assert crash_cause(_crashed(TORCHRUN)) == "FileNotFoundError: No files found for pattern: /data/fineweb_train_*.bin"
