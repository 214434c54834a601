"""Prompt templates: markdown files under prompts/, rendered with Jinja2 (a missing value is an error)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jinja2


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False,
    )  # fmt: skip


def _load(name: str) -> str:
    return resources.files("labmind.brains.llm").joinpath("prompts", f"{name}.md").read_text(encoding="utf-8")


def render(name: str, **values: Any) -> str:
    """Render prompts/<name>.md with `values`; undefined names raise jinja2.UndefinedError."""
    return _env().get_template(name).render(**values).strip() + "\n"
