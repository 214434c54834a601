"""Layer 6 of the guard: an LLM reviewer reads each proposed change against the task's rules.

It can only flag: a flagged experiment that wins is held for a person (verdict `flagged`), never promoted;
an unflagged one still goes through every other layer. When the reviewer cannot answer (API failure, no
usable JSON), the experiment is flagged `audit_failed`, so a broken auditor never waves a change through.
Use a different model from the implementer where possible (`--review-model`).
"""

from __future__ import annotations

from labmind.guard.findings import Finding, clip
from labmind.llm.base import CallContext, LLMClient
from labmind.llm.jsonout import NoJSONAnswer, ask_json
from labmind.llm.templates import PromptTemplates
from labmind.model import Idea
from labmind.task.model import Task
from labmind.task.text import task_values

render = PromptTemplates("labmind.guard").render  # the auditor's prompt: guard/prompts/audit.md
DIFF_CHARS = 30_000
NOTES_CHARS = 6_000
SCHEMA = {
    "type": "object",
    "properties": {"flag": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["flag", "reason"],
    "additionalProperties": False,
}


class Auditor:
    def __init__(self, client: LLMClient, brief: str = "") -> None:
        self.client = client
        self.brief = brief
        self.spec = getattr(client, "spec", "")

    def audit(self, task: Task, idea: Idea, diff: str, *, experiment_id: int, line_id: int | None,
              notes: str = "") -> list[Finding]:
        idea_text = idea.title + (f" — {idea.hypothesis}" if idea.hypothesis else "")
        cut = len(diff) > DIFF_CHARS
        prompt = render("audit", **task_values(task, 0.0, self.brief), idea=idea_text,
                        notes=notes[:NOTES_CHARS], diff=diff[:DIFF_CHARS], cut=cut)
        context = CallContext(role="audit", experiment_id=experiment_id, line_id=line_id)
        findings = [failed(f"the diff ({len(diff):,} characters) was cut at {DIFF_CHARS:,} for review",
                           rule="audit_incomplete")] if cut else []
        try:
            value = ask_json(self.client, prompt, system="", schema=SCHEMA, context=context, max_tokens=800)
        except NoJSONAnswer as exc:
            return [*findings, failed(str(exc))]
        except Exception as exc:  # anything else from the model's answer: fail closed, never wave it through
            return [*findings, failed(f"{type(exc).__name__}: {exc}")]
        flag = value.get("flag")
        if not isinstance(flag, bool):
            return [*findings, failed(f"the answer's flag was {flag!r}, not true or false")]
        if flag:
            reason = clip(str(value.get("reason") or "(no reason given)"))
            findings.append(Finding(rule="audit", family="audit", severity="flag", path=None, line=None,
                                    evidence=reason,
                                    explanation=f"the LLM auditor ({self.spec or 'reviewer'}) flagged this change"))
        return findings


def failed(why: str, rule: str = "audit_failed") -> Finding:
    return Finding(rule=rule, family="audit", severity="flag", path=None, line=None, evidence=clip(why),
                   explanation="the LLM auditor could not review this change in full")
