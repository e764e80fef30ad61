"""Chat messages for a problem.

One prompt is used both to sample y ~ π_ref(·|x) and to score π_θ(y|x) / π_ref(y|x) in training,
so the off-policy ratio of the surrogate (paper Eq. 7) compares the two models on the same
conditional. (The authors sample with a plain user prompt and score under a system prompt.)
"""

from __future__ import annotations

from o1pruner.spec import FAST_SOLVING_PROMPT, PromptSpec


def build_messages(problem: str, prompt: PromptSpec, fast_solving: bool = False) -> list[dict[str, str]]:
    """System + user messages; ``fast_solving`` appends the paper's fast-solving instruction
    (the prompt baseline of Sec. 4.1)."""
    system = prompt.system
    if fast_solving:
        system = f"{system} {FAST_SOLVING_PROMPT}".strip()
    messages = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt.template.replace("{problem}", problem)})
    return messages
