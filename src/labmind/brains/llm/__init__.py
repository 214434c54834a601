"""The built-in LLM brain: ideate → implement → (repair) → reflect, plus a director over lines."""

from labmind.llm.templates import PromptTemplates

#: The brain's prompts (prompts/*.md), one Jinja2 environment for all its steps.
render = PromptTemplates("labmind.brains.llm").render
