"""The one sampling interface both backends implement (vLLM over HTTP, in-process transformers)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationParams:
    """What to generate per prompt: ``n`` samples (K for reference sampling, 1 for greedy eval)."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int

    def seed_for(self, key: str) -> int:
        """A per-prompt seed that does not depend on batch order (so a resumed run is stable)."""
        digest = hashlib.sha256(key.encode()).digest()
        return (self.seed + int.from_bytes(digest[:4], "big")) % (2**31 - 1)


@dataclass(frozen=True)
class Completion:
    """One generated solution: its text, its token count under the model's tokenizer (EOS
    included when emitted) and why generation stopped (``stop`` or ``length``)."""

    text: str
    tokens: int
    finish_reason: str | None = None


class Sampler(ABC):
    """Generates ``params.n`` completions for each (key, messages) prompt.

    ``generate`` yields ``(key, completions)`` as prompts finish, in any order; a prompt that
    failed after the backend's own retries yields ``(key, exception)`` instead, so one bad
    request never aborts the others.
    """

    name: str = "sampler"

    @abstractmethod
    def generate(
        self, prompts: Sequence[tuple[str, Messages]], params: GenerationParams
    ) -> Iterator[tuple[str, list[Completion] | Exception]]: ...

    def close(self) -> None:
        """Release resources (HTTP pools, models)."""

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
