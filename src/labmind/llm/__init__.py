"""labmind's provider layer: one LLMClient interface over Anthropic, OpenAI and OpenAI-compatible servers.

    from labmind.llm import make_llm, Message, CallContext
    llm = make_llm("anthropic:claude-sonnet-4-6")
    answer = llm.complete([Message("user", "Hello")], context=CallContext(role="ideate"))

Importing this package loads no SDK; a provider's SDK is imported when its first client is made.
"""

from labmind.llm.base import (
    CallContext,
    Completion,
    LLMBadResponse,
    LLMBudgetExceeded,
    LLMClient,
    LLMError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from labmind.llm.budget import Budget
from labmind.llm.calllog import CallLog, CallRecord, MemoryCallLog
from labmind.llm.config import LLMConfig, LLMConfigError, PriceOverride, ProviderSettings
from labmind.llm.factory import make_llm
from labmind.llm.metered import Metered
from labmind.llm.pricing import Pricer
from labmind.llm.ratelimit import RateLimiter
from labmind.llm.spec import ProviderSpec, SpecError, parse_spec

__all__ = [
    "Budget",
    "CallContext",
    "CallLog",
    "CallRecord",
    "Completion",
    "LLMBadResponse",
    "LLMBudgetExceeded",
    "LLMClient",
    "LLMConfig",
    "LLMConfigError",
    "LLMError",
    "MemoryCallLog",
    "Message",
    "Metered",
    "PriceOverride",
    "Pricer",
    "ProviderSettings",
    "ProviderSpec",
    "RateLimiter",
    "SpecError",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "make_llm",
    "parse_spec",
]
