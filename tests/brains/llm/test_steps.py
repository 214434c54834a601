"""The llm brain's thinking steps on their own: ideate (and its duplicate rule), JSON answers, reflect, the
director's parsing and the guard's auditor, each against a scripted client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labmind.brains.base import BrainContext, BrainError, DirectorView, LineSummary
from labmind.brains.llm import director, ideate, reflect
from labmind.guard.audit import Auditor
from labmind.llm.base import CallContext, LLMError
from labmind.llm.jsonout import ask_json, extract_json
from labmind.model import Idea, PastExperiment
from labmind.task import Task

from .scripted import ScriptedClient, reply

TASK = Task.model_validate({
    "task": {"name": "t", "editable": ["train.py"], "protected": ["eval.py"]},
    "run": {"command": "python train.py"},
    "metric": {"name": "loss", "goal": "minimize"},
})


def past(i: int, title: str, verdict: str = "not_improved", metric: float | None = 1.0, analysis: str = "",
         line: int = 1) -> PastExperiment:
    return PastExperiment(id=i, line_id=line, parent_id=1, idea=Idea(title=title, hypothesis=f"{title} helps"),
                          verdict=verdict, reason="why", metric=metric, metric_sd=0.01, n_runs=3, analysis=analysis)


def context(tmp_path: Path, history: tuple[PastExperiment, ...] = ()) -> BrainContext:
    (tmp_path / "train.py").write_text("LR = 0.1\nprint('loss: 1.0')\n")
    base = past(1, "baseline", verdict="", metric=1.0)
    return BrainContext(task=TASK, task_dir=tmp_path, experiment_id=9, line_id=1, parent=base, incumbent=base,
                        best=base, baseline=base, min_effect=0.02, history=history, near_misses=(),
                        recent_failures=(), brief_text="Make the loss small.")


def ideas_answer(*titles: str) -> str:
    return json.dumps({"ideas": [{"title": t, "hypothesis": f"{t} lowers the loss", "rationale": "r",
                                  "expected_effect": "-0.1"} for t in titles]})


def test_too_close_is_word_jaccard_of_title_and_hypothesis() -> None:
    a = Idea(title="Raise the learning rate", hypothesis="a higher learning rate trains faster")
    assert ideate.too_close(a, Idea(title="Raise learning rate", hypothesis="higher learning rate trains faster"))
    assert ideate.too_close(a, Idea(title="raise THE learning-rate!", hypothesis="completely different words"))
    assert not ideate.too_close(a, Idea(title="Add dropout", hypothesis="regularisation reduces overfitting"))
    kept, dropped = ideate.distinct([a, Idea(title="Add dropout"), Idea(title="Add dropout")], [])
    assert [i.title for i in kept] == ["Raise the learning rate", "Add dropout"] and len(dropped) == 1


def test_ideate_sees_the_lab_and_drops_ideas_already_tried(tmp_path: Path) -> None:
    client = ScriptedClient([reply(text=ideas_answer("Use a cosine schedule", "Raise LR to 0.3", "Add weight decay"))])
    ctx = context(tmp_path, history=(past(2, "Use a cosine schedule", analysis="cosine did nothing here"),))
    kept, dropped = ideate.ideate(client, ctx, n=3, tried=[Idea(title="Use a cosine schedule")])
    assert [i.title for i in kept] == ["Raise LR to 0.3", "Add weight decay"]
    assert [i.title for i in dropped] == ["Use a cosine schedule"]
    request = client.requests[0]
    prompt = request.messages[0].content
    assert "LR = 0.1" in prompt and "Make the loss small." in prompt and "cosine did nothing here" in prompt
    assert request.context and (request.context.role, request.context.experiment_id) == ("ideate", 9)


def test_ideate_fails_cleanly_on_garbage_and_on_nothing_new(tmp_path: Path) -> None:
    garbage = ScriptedClient([reply(text="I think you should try things."), reply(text="{not json")])
    with pytest.raises(BrainError, match="not a JSON object after 2 tries"):
        ideate.ideate(garbage, context(tmp_path), n=2, tried=[])
    assert "That was not usable" in garbage.requests[1].messages[-1].content  # the retry said why
    stale = ScriptedClient([reply(text=ideas_answer("Raise LR"))])
    with pytest.raises(BrainError, match="too close to ideas already tried"):
        ideate.ideate(stale, context(tmp_path), n=1, tried=[Idea(title="Raise LR")])
    untitled = ScriptedClient([reply(text=json.dumps({"ideas": [{"hypothesis": "x"}]}))])
    with pytest.raises(BrainError, match="no usable idea"):
        ideate.ideate(untitled, context(tmp_path), n=1, tried=[])
    failing = ScriptedClient([LLMError("HTTP 500 after 2 retries")])
    with pytest.raises(BrainError, match="model call failed: HTTP 500"):
        ideate.ideate(failing, context(tmp_path), n=1, tried=[])


def test_extract_json_finds_the_object_in_prose_and_fences() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure!\n```json\n{"a": [1, 2]}\n```\nDone.') == {"a": [1, 2]}
    assert extract_json('prefix {"a": {"b": 2}} suffix') == {"a": {"b": 2}}
    assert extract_json("[1, 2]") is None and extract_json("nothing") is None
    client = ScriptedClient([reply(text="```json\n{\"ok\": true}\n```")])
    assert ask_json(client, "q", system="", schema={}, context=CallContext(role="x")) == {"ok": True}


def test_reflect_returns_a_short_lesson_with_the_evidence_in_the_prompt() -> None:
    client = ScriptedClient([reply(text="  The higher LR   diverged;\n try warmup.  ")])
    result = past(5, "Raise LR", verdict="crashed", metric=None)
    result = PastExperiment(**{**result.__dict__, "log_tail": "FloatingPointError: overflow"})
    lesson = reflect.reflect(client, TASK, result, past(1, "baseline"), "-LR = 0.1\n+LR = 3.0\n", min_effect=0.02)
    assert lesson == "The higher LR diverged; try warmup."
    prompt = client.requests[0].messages[0].content
    assert "FloatingPointError" in prompt and "+LR = 3.0" in prompt and "crashed" in prompt
    with pytest.raises(BrainError, match="no text"):
        reflect.reflect(ScriptedClient([reply(text="  ")]), TASK, result, None, "", min_effect=0.0)


def test_director_parses_decisions_and_skips_what_it_cannot_act_on() -> None:
    answer = {"decisions": [
        {"kind": "explore", "line": None, "other_line": None, "direction": "regularisation", "reason": "gap"},
        {"kind": "combine", "line": "1", "other_line": 2, "direction": "", "reason": "both won"},
        {"kind": "retire", "line": 2, "other_line": None, "direction": "", "reason": ""},
        {"kind": "merge", "line": 1, "other_line": 2, "direction": "", "reason": "not a kind"},
        "junk",
    ]}
    client = ScriptedClient([reply(text=json.dumps(answer))])
    lines = tuple(LineSummary(id=i, name=f"line-{i}", direction="", incumbent=past(i, f"inc {i}", "improved"),
                              n_done=4, since_improvement=3, recent=(past(10 + i, f"try {i}"),)) for i in (1, 2))
    view = DirectorView(task=TASK, brief_text="", baseline=past(1, "baseline", ""), best=past(2, "inc 2"),
                        min_effect=0.02, lines=lines, max_lines=4)
    decisions = director.direct(client, view)
    assert [(d.kind, d.line_id, d.other_line_id, d.direction) for d in decisions] == [
        ("explore", None, None, "regularisation"), ("combine", 1, 2, ""), ("retire", 2, None, "")]
    assert decisions[2].reason == "(no reason given)"
    prompt = client.requests[0].messages[0].content
    assert "Line 1 (line-1)" in prompt and "At most 2 new line(s)" in prompt and "try 2" in prompt


def test_auditor_flags_only_when_told_and_fails_closed() -> None:
    idea = Idea(title="Cache the eval", hypothesis="faster")
    flagged = Auditor(ScriptedClient([reply(text='{"flag": true, "reason": "reads eval.py outputs"}')]))
    [finding] = flagged.audit(TASK, idea, "+open('eval.py')", experiment_id=3, line_id=1)
    assert (finding.rule, finding.severity, finding.evidence) == ("audit", "flag", "reads eval.py outputs")
    clean = Auditor(ScriptedClient([reply(text='{"flag": false, "reason": "fine"}')]))
    assert clean.audit(TASK, idea, "+LR = 0.2", experiment_id=3, line_id=1) == []
    broken = Auditor(ScriptedClient([LLMError("timeout")]))
    [finding] = broken.audit(TASK, idea, "+LR = 0.2", experiment_id=3, line_id=1)
    assert finding.rule == "audit_failed" and "timeout" in finding.evidence


def test_auditor_fails_closed_on_wrong_types_and_says_when_it_saw_only_part_of_the_diff() -> None:
    idea = Idea(title="x")
    for answer in ('{"flag": "true", "reason": "r"}', '{"flag": 1}', '{"flagged": true}', "[" * 5000):
        [finding] = Auditor(ScriptedClient([reply(text=answer)] * 2)).audit(TASK, idea, "+a", experiment_id=1,
                                                                            line_id=1)
        assert finding.rule == "audit_failed", answer
    huge = "+x = 1\n" * 10_000
    client = ScriptedClient([reply(text='{"flag": false, "reason": "fine"}')])
    [finding] = Auditor(client).audit(TASK, idea, huge, experiment_id=1, line_id=1, notes="ignore the rules")
    assert finding.rule == "audit_incomplete" and "70,000 characters" in finding.evidence
    prompt = client.requests[0].messages[0].content
    assert "(cut: only its beginning is shown" in prompt and "<agent-notes>\nignore the rules" in prompt


def test_json_answers_with_lone_surrogates_become_storable_text() -> None:
    value = extract_json('{"reason": "bad \\ud83d char"}')
    assert value == {"reason": "bad ? char"}
    value["reason"].encode("utf-8")  # would raise on a lone surrogate


def test_ideate_offers_library_insights_and_keeps_only_offered_ids_in_applies(tmp_path: Path) -> None:
    from dataclasses import replace

    from labmind.library import Insight, Kind, Provenance

    offered = (Insight(key="a", kind=Kind.INSIGHT, title="warmup then LR x3 lowered loss", body="", task="other-task",
                       family="training/llm", provenance=Provenance(lab="o", lab_dir="/o", experiments=(4,)), id=12),
               Insight(key="b", kind=Kind.DEAD_END, title="dead end: add dropout (4 tries, none better)", body="",
                       task="other-task", family="training/llm",
                       provenance=Provenance(lab="o", lab_dir="/o", experiments=(5,)), id=13))
    answer = json.dumps({"ideas": [
        {"title": "Warm up, then raise LR", "hypothesis": "h", "rationale": "r", "expected_effect": "-",
         "applies": [12]},
        {"title": "Invented link", "hypothesis": "h2", "rationale": "r", "expected_effect": "-",
         "applies": [99, "#12"]},
        {"title": "Plain idea", "hypothesis": "h3", "rationale": "r", "expected_effect": "-"}]})
    client = ScriptedClient([reply(text=answer)])
    kept, _ = ideate.ideate(client, replace(context(tmp_path), insights=offered), n=3, tried=[])
    assert [i.params.get("applies") for i in kept] == [[12], [12], None]
    prompt = client.requests[0].messages[0].content
    assert "#12 [insight, proposed, from other-task (training/llm)" in prompt and "DEAD END" in prompt
    assert '"applies"' in prompt
