"""The implement loop driven by a scripted model through tool calls, in a real git worktree."""

from __future__ import annotations

import json
from pathlib import Path

from labmind.brains.llm.implement import ImplementLimits, ImplementResult, implement
from labmind.llm.base import CallContext

from .conftest import EDITABLE, HIDDEN, MODEL, PROTECTED, TRAIN, changed_files
from .scripted import ScriptedClient, broken_call, call, reply

CONTEXT = CallContext(role="implement", experiment_id=1, line_id=0)


def run(client: ScriptedClient, worktree: Path, **kwargs: object) -> ImplementResult:
    options: dict = dict(
        system="SYSTEM", instructions="Lower the learning rate and add weight decay.", workdir=worktree,
        editable=EDITABLE, protected=PROTECTED, smoke=None, run_check=None, limits=ImplementLimits(),
        context=CONTEXT, hidden=HIDDEN,
    )  # fmt: skip
    options.update(kwargs)
    return implement(client, **options)


def test_multi_file_change_through_tools(worktree: Path) -> None:
    client = ScriptedClient([
        reply(call("list_files"), text="Let me look around."),
        reply(call("read_file", path="train.py", start_line=3, end_line=4)),
        reply(
            call("edit", path="train.py", old="LR = 0.1\n", new="LR = 0.05\nWD = 0.01\n"),
            call("edit", path="model.py", old="        self.w -= lr * self.w\n",
                 new="        self.w -= lr * self.w + lr * wd * self.w\n"),
            call("write_file", path="lib/decay.py", content="def wd_default():\n    return 0.01\n"),
        ),
        reply(call("edit", path="model.py", old="def update(self, lr):", new="def update(self, lr, wd=0.0):")),
        reply(call("finish", summary="Halved the LR and added weight decay to Net.update.")),
    ])  # fmt: skip
    result = run(client, worktree)

    assert result.ok and result.reason == "finished"
    assert result.summary == "Halved the LR and added weight decay to Net.update."
    assert result.edited == ["lib/decay.py", "model.py", "train.py"]
    assert result.steps == 5 and result.tokens == 500
    assert (worktree / "train.py").read_text() == TRAIN.replace("LR = 0.1\n", "LR = 0.05\nWD = 0.01\n")
    assert (
        "def update(self, lr, wd=0.0):\n        self.w -= lr * self.w + lr * wd * self.w\n"
        in (worktree / "model.py").read_text()
    )
    assert changed_files(worktree) == ["task/lib/decay.py", "task/model.py", "task/train.py"]

    results = client.tool_results()
    assert [r.is_error for r in results] == [False] * 6  # the finish answer is only in the transcript
    listing = results[0].content
    assert "E  train.py  (15 lines)" in listing and "E  model.py" in listing
    assert "P  prepare.py" in listing and "R  README.md" in listing
    assert "eval.txt" not in listing  # hidden from agents
    assert "Editable globs matching no file yet (write_file may create them): lib/*.py" in listing
    assert results[1].content == "train.py: lines 3-4 of 15\n     3\tLR = 0.1\n     4\tSTEPS = 10"
    assert results[2].content.startswith("edited train.py; it now reads:\n")
    assert "     3\tLR = 0.05\n     4\tWD = 0.01" in results[2].content
    assert results[4].content == "created lib/decay.py (2 lines)"
    # Each tool result answers its own call.
    first_calls = [m for m in client.requests[-1].messages if m.role == "assistant"][2].tool_calls
    assert [r.tool_call_id for r in results[2:5]] == [c.id for c in first_calls]
    # Every request carried the system prompt, the tools (no run_check without a smoke) and the context.
    assert all(r.system == "SYSTEM" and r.context == CONTEXT for r in client.requests)
    assert client.requests[0].tool_names == ["list_files", "read_file", "search", "edit", "write_file", "finish"]
    assert client.requests[0].messages[0].content == "Lower the learning rate and add weight decay."


def test_refusals_come_back_as_tool_errors(worktree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    client = ScriptedClient([
        reply(
            call("edit", path="prepare.py", old="DATA", new="DATA2"),
            call("write_file", path="README.md", content="hacked\n"),
            call("write_file", path="../outside.py", content="x = 1\n"),
            call("write_file", path=str(outside), content="x = 1\n"),
            call("write_file", path="labmind.toml", content="[task]\n"),
            call("write_file", path=".git", content="gitdir: /elsewhere\n"),
            call("edit", path="train.py", old="self", new="this"),
            call("edit", path="model.py", old="self.w", new="self.weight"),
            call("edit", path="model.py", old="self.w -= lr*self.w", new="pass"),
            call("read_file", path="data/eval.txt"),
            call("edit", path="model.py", old="", new="x"),
            call("read_file", path="nope.py"),
        ),
        reply(call("finish", summary="done")),
        reply(call("finish", summary="done")),
    ])  # fmt: skip
    result = run(client, worktree)

    errors = [m.content for m in client.tool_results()]
    assert all(m.is_error for m in client.tool_results())
    assert errors[0] == "prepare.py is protected (read-only: prepare.py)"
    assert errors[1] == "README.md is not editable; editable files match: train.py, model.py, lib/*.py"
    assert errors[2] == "../outside.py is outside the task directory"
    assert errors[3] == f"{outside} is outside the task directory; use paths relative to it"
    assert errors[4] == "labmind.toml is labmind's task file and read-only"
    assert errors[5].startswith(".git is inside .git/")
    assert errors[6].startswith("old text not found in train.py.")
    assert errors[7] == (
        "old text occurs 5 times in model.py (on lines 3, 6, 9); include more surrounding lines "
        "so it matches exactly once"
    )
    assert "with different indentation or spacing" not in errors[8]
    assert "The closest text is near line 6:" in errors[8] and "     6\t        self.w -= lr * self.w" in errors[8]
    assert errors[9] == "data/eval.txt is hidden from agents (evaluation data)"
    assert errors[10].startswith("old is empty")
    assert errors[11] == "nope.py is not an existing file; use list_files to see the files"
    # finish with nothing changed: one nudge as a tool error, then the loop stops.
    assert "You have not changed any file yet" in errors[12]
    assert result.reason == "no edit" and not result.ok and result.edited == [] and result.steps == 3
    assert not outside.exists()
    assert changed_files(worktree) == []


def test_symlinks_cannot_lead_out_of_scope(worktree: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.py").write_text("KEY = 'x'\n")
    (worktree / "lib").symlink_to(elsewhere)  # lib/*.py is editable, but lib/ leads out of the task
    (worktree / "alias.py").symlink_to("prepare.py")
    client = ScriptedClient([
        reply(
            call("write_file", path="lib/new.py", content="x = 1\n"),
            call("edit", path="lib/secret.py", old="KEY = 'x'", new="KEY = 'y'"),
            call("read_file", path="lib/secret.py"),
            call("write_file", path="alias.py", content="DATA = []\n"),
        ),
        reply(text=""),
        reply(text=""),
    ])  # fmt: skip
    result = run(client, worktree, editable=[*EDITABLE, "*.py"])

    errors = [m.content for m in client.tool_results()]
    assert all(m.is_error for m in client.tool_results())
    target = elsewhere.resolve()
    escape = "resolves (through a symlink) to {}, outside the task directory"
    assert errors[0] == f"lib/new.py {escape.format(target / 'new.py')}"
    assert errors[1] == f"lib/secret.py {escape.format(target / 'secret.py')}"
    assert errors[2] == errors[1]
    assert errors[3] == "alias.py is a symlink to prepare.py: prepare.py is protected (read-only: prepare.py)"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.py"]
    assert (elsewhere / "secret.py").read_text() == "KEY = 'x'\n"
    assert (worktree / "prepare.py").read_text() == "DATA = [1, 2, 3]\n"
    assert result.reason == "no edit"


def test_new_files_that_shadow_modules_are_refused(worktree: Path) -> None:
    client = ScriptedClient([
        reply(
            call("write_file", path="json.py", content="loads = None\n"),
            call("write_file", path="sitecustomize.py", content="import os\n"),
            call("write_file", path="helpers.py", content="X = 1\n"),
        ),
        reply(call("finish", summary="added helpers")),
    ])  # fmt: skip
    result = run(client, worktree, editable=["*.py"])
    errors = [m.content for m in client.tool_results()]
    assert errors[0] == (
        "creating json.py is refused: it shadows the standard-library module json; choose another file name"
    )
    assert errors[1].startswith("creating sitecustomize.py is refused: it is loaded by Python or pytest")
    assert errors[2] == "created helpers.py (1 lines)"
    assert result.ok and result.edited == ["helpers.py"]


def test_bad_arguments_and_unknown_tools(worktree: Path) -> None:
    client = ScriptedClient([
        reply(
            broken_call("edit", '{"path": "train.py", "old": "LR = 0.1'),
            call("edit", path="train.py", old="LR = 0.1"),
            call("read_file", path="train.py", start_line="two"),
            call("edit", path=["train.py"], old="a", new="b"),
            call("run_check"),
            call("shell", command="rm -rf /"),
        ),
        reply(call("read_file", path="train.py", start_line="14", extra="ignored")),
        reply(call("edit", path="train.py", old="LR = 0.1", new="LR = 0.3")),
        reply(text="I changed the learning rate to 0.3."),
    ])  # fmt: skip
    result = run(client, worktree)

    results = client.tool_results()
    errors = [m.content for m in results[:6]]
    assert all(m.is_error for m in results[:6])
    assert errors[0] == (
        'the arguments of edit are not a valid JSON object (\'{"path": "train.py", "old": "LR = 0.1\'); '
        "send one JSON object with: path (string), old (string), new (string)"
    )
    assert errors[1] == "edit needs the argument 'new'; its arguments are: path (string), old (string), new (string)"
    assert errors[2] == "argument 'start_line' of read_file must be an integer, got 'two'"
    assert errors[3] == "argument 'path' of edit must be a string, got list"
    tools = "list_files, read_file, search, edit, write_file, finish"
    assert errors[4] == f"unknown tool 'run_check'; the tools are: {tools}"
    assert errors[5] == f"unknown tool 'shell'; the tools are: {tools}"
    assert results[6].content == 'train.py: lines 14-15 of 15\n    14\tif __name__ == "__main__":\n    15\t    main()'
    # A plain answer after an edit ends the loop (the text rule), with the answer as the summary.
    assert result.ok and result.reason == "finished" and result.summary == "I changed the learning rate to 0.3."
    assert result.edited == ["train.py"]


def test_repeated_identical_failures_stop_the_loop(worktree: Path) -> None:
    same = dict(path="train.py", old="LR = 0.5", new="LR = 0.2")
    client = ScriptedClient([
        reply(call("edit", path="train.py", old="LR = 0.1", new="LR = 0.2")),
        reply(call("edit", **same)),
        reply(call("read_file", path="train.py")),
        reply(call("edit", **same)),
        reply(call("edit", **same)),
        reply(call("finish", summary="never reached")),
    ])  # fmt: skip
    result = run(client, worktree)
    errors = [e["result"] for e in result.transcript if e["role"] == "tool" and e["is_error"]]
    assert len(errors) == 3
    assert "You made this exact call before" not in errors[0]
    assert errors[1].endswith("(You made this exact call before and it failed the same way: do something different.)")
    assert result.reason == "stopped early: the same failing edit call was made 3 times"
    assert not result.ok and result.edited == ["train.py"] and result.steps == 5


def test_undone_edits_are_no_edit(worktree: Path) -> None:
    client = ScriptedClient([
        reply(call("edit", path="train.py", old="LR = 0.1", new="LR = 0.2")),
        reply(call("edit", path="train.py", old="LR = 0.2", new="LR = 0.1")),
        reply(call("finish", summary="reverted")),
        reply(call("finish", summary="reverted")),
    ])  # fmt: skip
    result = run(client, worktree)
    assert "You have not changed any file yet" in client.tool_results()[2].content
    assert result.reason == "no edit" and not result.ok and result.edited == []
    assert (worktree / "train.py").read_text() == TRAIN


def test_transcript_records_every_turn(worktree: Path) -> None:
    big = "".join(f"VALUE_{i} = {i}\n" for i in range(3000))
    (worktree / "model.py").write_text(MODEL + big)
    client = ScriptedClient([
        reply(call("read_file", path="model.py"), text="Reading the model."),
        reply(broken_call("edit", "{oops")),
        reply(call("edit", path="train.py", old="LR = 0.1", new="LR = 0.2"), tokens=250),
        reply(call("finish", summary="Raised the LR.")),
    ])  # fmt: skip
    result = run(client, worktree, system="THE SYSTEM PROMPT")
    t = result.transcript
    json.dumps(t)  # saved beside the experiment as JSON
    assert [e["role"] for e in t] == [
        "system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant", "tool", "end",
    ]  # fmt: skip
    assert t[0]["text"] == "THE SYSTEM PROMPT"
    assert t[1]["text"] == "Lower the learning rate and add weight decay."
    assert t[2]["text"] == "Reading the model." and t[2]["step"] == 1
    assert t[2]["tool_calls"][0]["name"] == "read_file"
    assert t[2]["tool_calls"][0]["arguments"] == {"path": "model.py"}
    assert t[3]["name"] == "read_file" and not t[3]["is_error"]
    # The model saw a capped page of the big file; the transcript keeps a shorter excerpt of it.
    shown = client.tool_results()[0].content
    assert 20_000 < len(shown) < 26_000 and "[more: call read_file with start_line=" in shown
    assert len(t[3]["result"]) < 4_100 and t[3]["result"].endswith("more characters]")
    assert t[4]["tool_calls"][0] == {"id": t[4]["tool_calls"][0]["id"], "name": "edit", "arguments": None,
                                     "raw_arguments": "{oops"}  # fmt: skip
    assert t[5]["is_error"] and "not a valid JSON object" in t[5]["result"]
    assert t[6]["tokens"] == 250
    assert t[9]["result"] == "finished"
    assert t[10] == {"role": "end", "reason": "finished", "ok": True, "steps": 4, "tokens": 550, "edited": ["train.py"]}
