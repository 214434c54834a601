"""Prompt templates: markdown files in a package's prompts/ folder, rendered with Jinja2 (a missing value is an
error). Each part that talks to a model keeps its own prompts beside its code (`labmind.brains.llm`,
`labmind.guard`) and renders them through one `PromptTemplates`."""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from typing import Any

import jinja2


class PromptTemplates:
    """The templates under `<package>/prompts/<name>.md`; `{% include "_state" %}` reaches siblings."""

    def __init__(self, package: str) -> None:
        self.package = package

    @cached_property
    def _env(self) -> jinja2.Environment:
        return jinja2.Environment(
            loader=jinja2.FunctionLoader(self._load), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
            trim_blocks=True, lstrip_blocks=True, autoescape=False,
        )  # fmt: skip

    def _load(self, name: str) -> str:
        return resources.files(self.package).joinpath("prompts", f"{name}.md").read_text(encoding="utf-8")

    def render(self, name: str, **values: Any) -> str:
        """Render prompts/<name>.md with `values`; undefined names raise jinja2.UndefinedError."""
        return self._env.get_template(name).render(**values).strip() + "\n"
