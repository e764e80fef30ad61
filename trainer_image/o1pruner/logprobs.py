"""Per-sequence log-probabilities of a solution under a causal LM (torch)."""

from __future__ import annotations

import torch


def sequence_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_mask: torch.Tensor,
    autocast: torch.dtype | None = None,
):
    """Sum of token log-probs over the solution tokens and their count, per sequence.

    ``loss_mask[b, t]`` is 1 where token t of sequence b belongs to the solution y (not the
    prompt, not padding). Returns ``(sum_logp [B], n_tokens [B])``; the mean token log-prob used
    by the sequence-level ratio is ``sum_logp / n_tokens``.

    ``autocast`` runs the model's forward under ``torch.autocast`` in that dtype (bf16 compute
    over fp32 weights); the log-softmax and the sums are always fp32.
    """
    with torch.autocast(device_type=input_ids.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logits = logits[:, :-1, :].float()
    targets = input_ids[:, 1:]
    mask = loss_mask[:, 1:].to(logits.dtype)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1), mask.sum(-1)
