"""The implement loop with a model that cannot call tools: SEARCH/REPLACE blocks in plain text."""

from __future__ import annotations

from pathlib import Path

from labmind.brains.llm.edits import Block, parse_blocks
from labmind.brains.llm.implement import NUDGE, ImplementLimits, ImplementResult, implement
from labmind.llm.base import CallContext

from .conftest import EDITABLE, PROTECTED, TRAIN, changed_files
from .scripted import ScriptedClient, reply


def run(client: ScriptedClient, worktree: Path, **kwargs: object) -> ImplementResult:
    options: dict = dict(
        system="SYSTEM", instructions="Use a smaller learning rate.", workdir=worktree, editable=EDITABLE,
        protected=PROTECTED, smoke=None, run_check=None, limits=ImplementLimits(),
        context=CallContext(role="implement", experiment_id=2),
    )  # fmt: skip
    options.update(kwargs)
    return implement(client, **options)


BLOCKS = """\
I will lower the learning rate and let the model take it.

```python
train.py
<<<<<<< SEARCH
LR = 0.1
=======
LR = 0.03
>>>>>>> REPLACE
```

**File: model.py**
<<<<<<< SEARCH
    def update(self, lr):
=======
    def update(self, lr: float) -> None:
>>>>>>> REPLACE
<<<<<<< SEARCH
    def loss(self):
=======
    def loss(self) -> float:
>>>>>>> REPLACE

lib/lr_sched.py
<<<<<<< SEARCH
=======
def constant(lr):
    return lr
>>>>>>> REPLACE
"""


def test_multi_file_change_through_text_blocks(worktree: Path) -> None:
    client = ScriptedClient([reply(text=BLOCKS), reply(text="Lowered LR to 0.03 and typed Net.")])
    result = run(client, worktree)

    assert result.ok and result.reason == "finished" and result.steps == 2
    assert result.summary == "Lowered LR to 0.03 and typed Net."
    assert result.edited == ["lib/lr_sched.py", "model.py", "train.py"]
    assert "LR = 0.03\n" in (worktree / "train.py").read_text()
    model = (worktree / "model.py").read_text()
    assert "def update(self, lr: float) -> None:" in model and "def loss(self) -> float:" in model
    assert (worktree / "lib" / "lr_sched.py").read_text() == "def constant(lr):\n    return lr\n"
    assert changed_files(worktree) == ["task/lib/lr_sched.py", "task/model.py", "task/train.py"]
    feedback = client.requests[1].messages[-1]
    assert feedback.role == "user"
    lines = feedback.content.splitlines()
    assert lines[0].startswith("block 1 (train.py): applied; edited train.py; it now reads:")
    assert any(line.startswith("block 2 (model.py): applied;") for line in lines)
    assert any(line.startswith("block 3 (model.py): applied;") for line in lines)
    assert "block 4 (lib/lr_sched.py): applied; created lib/lr_sched.py (2 lines)" in lines
    assert lines[-1].startswith("Send more blocks if needed")


def test_failing_blocks_are_reported_and_repeats_stop(worktree: Path) -> None:
    wrong = "train.py\n<<<<<<< SEARCH\nLR = 0.5\n=======\nLR = 0.2\n>>>>>>> REPLACE\n"
    protected = "prepare.py\n<<<<<<< SEARCH\nDATA = [1, 2, 3]\n=======\nDATA = [1]\n>>>>>>> REPLACE\n"
    indent = (
        "model.py\n<<<<<<< SEARCH\ndef update(self, lr):\n    self.w -= lr * self.w\n=======\npass\n>>>>>>> REPLACE\n"
    )
    client = ScriptedClient([reply(text=wrong + protected + indent), reply(text=wrong), reply(text=wrong)])
    result = run(client, worktree)

    first = client.requests[1].messages[-1].content
    assert "block 1 (train.py): NOT applied: old text not found in train.py. The closest text is near line 3:" in first
    assert "block 2 (prepare.py): NOT applied: prepare.py is protected (read-only: prepare.py)" in first
    assert "block 3 (model.py): NOT applied: old text not found in model.py. The same lines exist with different " \
           "indentation or spacing at lines 5-6" in first  # fmt: skip
    second = client.requests[2].messages[-1].content
    assert "You made this exact call before" in second
    assert result.reason == "stopped early: the same failing edit block call was made 3 times"
    assert not result.ok and result.edited == [] and (worktree / "train.py").read_text() == TRAIN


def test_empty_answer_gets_one_nudge_then_stops(worktree: Path) -> None:
    client = ScriptedClient([reply(text=""), reply(text="I think the learning rate is fine as it is.")])
    result = run(client, worktree)
    assert client.requests[1].messages[-1].content == NUDGE
    assert client.requests[1].messages[-2].content == "(empty answer)"  # never an empty assistant turn
    assert result.reason == "no edit" and not result.ok and result.steps == 2
    assert result.summary == "I think the learning rate is fine as it is."
    assert result.transcript[2]["text"] == ""  # the transcript keeps what the model really sent


def test_nudge_then_edit_finishes(worktree: Path) -> None:
    block = "train.py\n<<<<<<< SEARCH\nSTEPS = 10\n=======\nSTEPS = 20\n>>>>>>> REPLACE\n"
    client = ScriptedClient([reply(text="Okay."), reply(text=block), reply(text="Doubled the steps.")])
    result = run(client, worktree)
    assert result.ok and result.reason == "finished" and result.edited == ["train.py"] and result.steps == 3


def test_cut_off_answer_is_reported(worktree: Path) -> None:
    cut = "train.py\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 0."
    client = ScriptedClient([reply(text=cut, stop_reason="max_tokens"), reply(text=""), reply(text="")])
    result = run(client, worktree)
    feedback = client.requests[1].messages[-1].content
    assert "block 1: no '>>>>>>> REPLACE' line after '<<<<<<< SEARCH' (was the answer cut off?)" in feedback
    assert "Your answer was cut off at the output limit" in feedback
    assert result.reason == "no edit"


def test_search_without_final_newline_matches_the_last_line(worktree: Path) -> None:
    (worktree / "model.py").write_text("A = 1\nB = 2")  # no newline at the end of the file
    block = "model.py\n<<<<<<< SEARCH\nB = 2\n=======\nB = 3\n>>>>>>> REPLACE\n"
    result = run(ScriptedClient([reply(text=block), reply(text="done")]), worktree)
    assert result.ok and (worktree / "model.py").read_text() == "A = 1\nB = 3"


def test_parse_blocks_forms_and_errors() -> None:
    text = (
        "Here:\n### `a/b.py`:\n~~~\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n~~~\n"
        "Some words here\n<<<<<<< SEARCH\nz\n=======\n>>>>>>> REPLACE\n"
        "'c.txt'\n<<<<<<<< SEARCH\n=======\nnew\n>>>>>>>> REPLACE\n"
        "d.py\n<<<<<<< SEARCH\nunfinished\n"
    )
    assert parse_blocks(text) == [
        Block("a/b.py", "x\n", "y\n"),
        "block 2: no file path on the line before '<<<<<<< SEARCH'",
        Block("c.txt", "", "new\n"),
        "block 4: no '=======' line after '<<<<<<< SEARCH' (was the answer cut off?)",
    ]
    assert parse_blocks("No blocks, just a summary.") == []


def test_cut_off_answer_without_blocks_is_not_a_final_answer(worktree: Path) -> None:
    block = "train.py\n<<<<<<< SEARCH\nSTEPS = 10\n=======\nSTEPS = 20\n>>>>>>> REPLACE\n"
    client = ScriptedClient([
        reply(text=block),
        reply(text="Next I will also change model.py:\n\nmodel.py\n", stop_reason="max_tokens"),
        reply(text="That is all: doubled the steps."),
    ])  # fmt: skip
    result = run(client, worktree)
    assert client.requests[2].messages[-1].content.startswith("Your answer was cut off at the output limit")
    assert result.reason == "finished" and result.steps == 3 and result.summary == "That is all: doubled the steps."
