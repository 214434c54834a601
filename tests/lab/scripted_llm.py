"""A scripted model for whole-lab tests of the llm brain: answers each role (ideate, implement, repair,
reflect, director, audit) by rule, with made-up token counts, behind the real Metered client."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from labmind.llm.base import CallContext, Completion, Message, ToolCall, Usage
from labmind.llm.metered import Metered

#: Ideas about examples/tiny-lm/train.py: title -> (old text, new text) of the edit that implements it.
EDITS: dict[str, tuple[str, str]] = {
    "Raise the learning rate to 3e-3": ("LEARNING_RATE = 3e-4", "LEARNING_RATE = 3e-3"),
    "Offset the seed by a learned bias": (
        'SEED = int(os.environ.get("SEED", "0"))', 'SEED = int(os.environ.get("SEED", "0")) + seed_bias'),
    "Widen the hidden layer to 256 units": ("HIDDEN = 192 ", "HIDDEN = 256 "),
    "Use a cosine learning-rate schedule": ('LR_SCHEDULE = "constant"', 'LR_SCHEDULE = "cosine"'),
    "Warm the learning rate up over 200 steps": ("WARMUP_STEPS = 0 ", "WARMUP_STEPS = 200 "),
}
#: A reworded copy of the first idea: the brain must drop it as too close to one already tried.
DUPLICATE = "Raise the learning rate to 3e-3 for all layers"
REPAIR = ('SEED = int(os.environ.get("SEED", "0")) + seed_bias', 'SEED = int(os.environ.get("SEED", "0")) + 0')


class ScriptedModel:
    """An LLMClient whose answers follow rules per role; thread-safe, records what it was asked."""

    def __init__(self, spec: str, titles: list[str] | None = None) -> None:
        self.titles = titles or list(EDITS)  # the order ideas are proposed in
        self.spec = spec
        self.model = spec.split(":", 1)[1].split("@", 1)[0]
        self.lock = threading.Lock()
        self.asked: list[tuple[str, int | None]] = []
        self.ideate_calls = 0
        self.director_calls = 0

    def complete(self, messages: list[Message], *, system: str = "", tools: Any = None, max_tokens: int = 4096,
                 temperature: float | None = None, json_schema: dict[str, Any] | None = None,
                 context: CallContext | None = None) -> Completion:
        role = context.role if context else ""
        with self.lock:
            self.asked.append((role, context.experiment_id if context else None))
        text, calls = getattr(self, f"_{role}")(messages)
        prompt = system + "".join(m.content for m in messages)
        return Completion(text=text, tool_calls=tuple(calls), model=self.model,
                          usage=Usage(input_tokens=len(prompt) // 4 + 1, output_tokens=len(text) // 4 + 7),
                          stop_reason="tool_use" if calls else "end")

    def _ideate(self, messages: list[Message]) -> tuple[str, list[ToolCall]]:
        with self.lock:
            k = self.ideate_calls
            self.ideate_calls += 1
        titles = self.titles
        batch = [titles[(2 * k + i) % len(titles)] for i in range(2)] + [DUPLICATE]
        ideas = [{"title": t, "hypothesis": f"{t.lower()} should lower val_bpb", "rationale": "common practice",
                  "expected_effect": "lower val_bpb"} for t in batch]
        return json.dumps({"ideas": ideas}), []

    def _implement(self, messages: list[Message]) -> tuple[str, list[ToolCall]]:
        if messages[-1].role == "tool":
            return "", [ToolCall(id=f"f{len(messages)}", name="finish", arguments={"summary": "edited train.py"})]
        first = messages[0].content
        title = re.search(r"^Idea(?: from line \d+)?: (.+)$", first, re.MULTILINE)
        old, new = EDITS.get(title.group(1).strip() if title else "", ("", ""))
        return "", [ToolCall(id="e1", name="edit", arguments={"path": "train.py", "old": old, "new": new})]

    def _repair(self, messages: list[Message]) -> tuple[str, list[ToolCall]]:
        if messages[-1].role == "tool":
            return "", [ToolCall(id="f2", name="finish", arguments={"summary": "defined the missing name"})]
        old, new = REPAIR
        return "", [ToolCall(id="r1", name="edit", arguments={"path": "train.py", "old": old, "new": new})]

    def _reflect(self, messages: list[Message]) -> tuple[str, list[ToolCall]]:
        return "The result matches the hypothesis; keep the change and tune around it.", []

    def _director(self, messages: list[Message]) -> tuple[str, list[ToolCall]]:
        with self.lock:
            first = self.director_calls == 0
            self.director_calls += 1
        if first:
            decisions = [
                {"kind": "explore", "line": None, "other_line": None, "direction": "regularisation (weight decay)",
                 "reason": "both lines tune the optimiser; nobody tries regularisation"},
                {"kind": "retire", "line": 99, "other_line": None, "direction": "",
                 "reason": "a line that is not there"},
            ]
        else:
            # Merge a line whose incumbent won into another line, once one has won.
            lines = re.findall(r"^Line (\d+) .*\n\n?- incumbent: #\d+ '[^']*': (\w+)", messages[0].content,
                               re.MULTILINE)
            winners = [int(n) for n, verdict in lines if verdict == "improved"]
            others = [int(n) for n, _ in lines if int(n) not in winners[:1]]
            decisions = [{"kind": "combine", "line": others[0], "other_line": winners[0], "direction": "",
                          "reason": "its win should transfer"}] if winners and others else []
        return json.dumps({"decisions": decisions}), []

    def _audit(self, messages: list[Message]) -> tuple[str, list[ToolCall]]:
        wide = "+HIDDEN = 256" in messages[0].content
        return json.dumps({"flag": wide, "reason": "the width change also changes the evaluation budget" if wide
                           else "an ordinary change"}), []


class ScriptedFactory:
    """`LLMClients(factory=...)`: a scripted model per spec, wrapped in the real Metered."""

    def __init__(self, titles: list[str] | None = None) -> None:
        self.models: dict[str, ScriptedModel] = {}
        self.titles = titles

    def __call__(self, spec: str, *, budget: Any = None, log: Any = None) -> Metered:
        model = self.models.setdefault(spec, ScriptedModel(spec, self.titles))
        return Metered(model, budget=budget, log=log)
