"""What pruning saves at serving time, per million requests (pure).

From the evaluation's mean completion lengths (base and pruned, tokens per request) and the
sampler's measured decode throughput (completion tokens per second over the whole sampler,
measured during reference sampling): tokens saved per million requests, the sampler-hours that
would take, and, when the sampler's accelerator count is known, accelerator-hours. A
throughput-bound estimate: it assumes serving decodes at the measured rate and that the saved
tokens are decode time (prefill is unchanged by pruning).
"""

from __future__ import annotations

MILLION = 1_000_000


def savings_per_million_requests(
    base_mean_length: float,
    pruned_mean_length: float,
    tokens_per_second: float | None = None,
    accelerators: int | None = None,
) -> dict:
    """``{"baseTokensPerRequest", "prunedTokensPerRequest", "tokensSavedPerMillionRequests",
    "samplerTokensPerSecond", "samplerHoursSavedPerMillionRequests", "accelerators",
    "acceleratorHoursSavedPerMillionRequests"}``; the hours are None without a measured
    throughput, accelerator-hours also without an accelerator count. Negative savings (a longer
    pruned model) are reported as they are."""
    if base_mean_length < 0 or pruned_mean_length < 0:
        raise ValueError("mean lengths must be >= 0")
    saved = (base_mean_length - pruned_mean_length) * MILLION
    tps = tokens_per_second if tokens_per_second and tokens_per_second > 0 else None
    hours = saved / tps / 3600 if tps else None
    return {
        "baseTokensPerRequest": base_mean_length,
        "prunedTokensPerRequest": pruned_mean_length,
        "tokensSavedPerMillionRequests": saved,
        "samplerTokensPerSecond": tps,
        "samplerHoursSavedPerMillionRequests": hours,
        "accelerators": accelerators,
        "acceleratorHoursSavedPerMillionRequests": hours * accelerators if hours is not None and accelerators else None,
    }
