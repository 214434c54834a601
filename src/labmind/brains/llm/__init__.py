"""The built-in LLM brain: ideate → implement → (repair) → reflect, plus a director over lines."""
