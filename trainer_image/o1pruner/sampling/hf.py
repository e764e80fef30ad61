"""In-process transformers sampler (the local, embedded run; also the benchmark's baseline).

Prompts are rendered with the tokenizer's chat template, left-padded into batches of
``batch_size`` prompts, and generated with ``num_return_sequences = n``. Token counts are the
generated tokens up to and including the first EOS (the same quantity vLLM reports).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from o1pruner.sampling.base import Completion, GenerationParams, Messages, Sampler


class HFSampler(Sampler):
    name = "transformers"

    def __init__(self, model, tokenizer, *, batch_size: int = 8, generate_kwargs: dict | None = None):
        """``generate_kwargs``: further options of transformers' ``generate`` for every batch (for
        example ``bad_words_ids``, which ``bench/redundancy_oracle.py`` uses to keep the testbed
        model from opening a kind of redundancy); they may not replace the sampling parameters."""
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.generate_kwargs = dict(generate_kwargs or {})
        clash = set(self.generate_kwargs) & _OWN_GENERATE_KWARGS
        if clash:
            raise ValueError(f"generate_kwargs may not set {sorted(clash)}: they come from GenerationParams")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = _eos_ids(model, tokenizer)

    @classmethod
    def from_pretrained(cls, path: str, *, batch_size: int = 8, dtype: torch.dtype | None = None,
                        device: str | None = None) -> HFSampler:
        """Load ``path`` where :func:`default_placement` says (this process's GPU in bf16 when it
        has one, else the CPU in fp32) unless ``device``/``dtype`` are given."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        auto_device, auto_dtype = default_placement(torch.cuda.is_available())
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or auto_dtype).to(device or auto_device)
        return cls(model, tokenizer, batch_size=batch_size)

    def _encode(self, batch: Sequence[tuple[str, Messages]]):
        texts = [
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            for _, messages in batch
        ]
        self.tokenizer.padding_side = "left"
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[tuple[str, Messages]], params: GenerationParams
    ) -> Iterator[tuple[str, list[Completion] | Exception]]:
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                enc = self._encode(batch).to(self.model.device)  # the tokenizer's tensors are on the CPU
                torch.manual_seed(params.seed_for(batch[0][0]))
                sample = params.temperature > 0
                out = self.model.generate(
                    **enc,
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    top_k=None,
                    max_new_tokens=params.max_tokens,
                    num_return_sequences=params.n,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.eos_ids,
                    **self.generate_kwargs,
                )
                generated = out[:, enc["input_ids"].shape[1] :]
                for i, (key, _) in enumerate(batch):
                    rows = generated[i * params.n : (i + 1) * params.n]
                    yield key, [self._completion(row, params.max_tokens) for row in rows]
        finally:
            self.model.train(was_training)

    def _completion(self, row: torch.Tensor, max_tokens: int) -> Completion:
        ids = row.tolist()
        length = len(ids)
        finish = "length"
        for pos, tok in enumerate(ids):
            if tok in self.eos_ids:
                length, finish = pos + 1, "stop"
                break
        text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
        return Completion(text=text, tokens=length, finish_reason=finish if length <= max_tokens else "length")


#: ``generate`` options the sampler sets itself, from :class:`GenerationParams` and the tokenizer.
_OWN_GENERATE_KWARGS = {"do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "num_return_sequences",
                        "pad_token_id", "eos_token_id", "input_ids", "attention_mask"}


def default_placement(cuda_available: bool) -> tuple[str, torch.dtype]:
    """Where an in-process sampler runs: the process's CUDA device in bf16 (as the trainer's
    forward, :func:`o1pruner.training.precision_policy`) when there is one, else the CPU in fp32.
    Before, it always loaded on the CPU, so a local or in-cluster run with the ``transformers``
    backend sampled on the CPU of a GPU machine."""
    return ("cuda", torch.bfloat16) if cuda_available else ("cpu", torch.float32)


def _eos_ids(model, tokenizer) -> list[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return sorted(ids)
