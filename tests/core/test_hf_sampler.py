"""The in-process transformers sampler: its batches go to the model's device, and token counts
and finish reasons are read off the generated rows as vLLM reports them."""

import torch

from o1pruner.sampling.base import GenerationParams
from o1pruner.sampling.hf import HFSampler


class _Tok:
    """Just enough tokenizer: fixed-length prompts, ids decoded as text."""

    pad_token_id = 0
    eos_token_id = 2
    eos_token = "</s>"
    padding_side = "right"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return messages[-1]["content"]

    def __call__(self, texts, return_tensors, padding, add_special_tokens):
        from transformers import BatchEncoding

        ids = torch.tensor([[5, 6, 7]] * len(texts))
        return BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})

    def decode(self, ids, skip_special_tokens):
        return " ".join(str(i) for i in ids if not (skip_special_tokens and i == self.eos_token_id))


class _Model:
    """Records where its inputs were; answers row 0 with an EOS at the third token and row 1
    with no EOS up to max_new_tokens."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.training = False
        self.generation_config = None
        self.seen: list[torch.device] = []

    def eval(self):
        return self

    def train(self, mode=True):
        self.training = mode

    def generate(self, input_ids, attention_mask, max_new_tokens, num_return_sequences, **_):
        self.seen += [input_ids.device, attention_mask.device]
        rows = input_ids.shape[0] * num_return_sequences
        out = torch.full((rows, input_ids.shape[1] + max_new_tokens), 9)
        out[:, : input_ids.shape[1]] = 5
        out[0::2, input_ids.shape[1] + 2] = 2
        out[0::2, input_ids.shape[1] + 3 :] = 0  # padding after the EOS
        return out


def test_inputs_go_to_the_models_device():
    """On a GPU the tokenizer's CPU tensors were handed to a CUDA model as they were (transformers
    warned, and decoding ran with the ids on the wrong device): they follow the model now. The
    meta device stands in for CUDA here."""
    model = _Model("meta")
    sampler = HFSampler(model, _Tok(), batch_size=2)
    params = GenerationParams(n=2, temperature=0.0, top_p=1.0, max_tokens=6, seed=0)
    prompts = [(f"p{i}", [{"role": "user", "content": f"q{i}"}]) for i in range(3)]
    done = dict(sampler.generate(prompts, params))
    assert model.seen and all(d.type == "meta" for d in model.seen)
    assert sorted(done) == ["p0", "p1", "p2"]
    for completions in done.values():
        stopped, cut = completions
        assert (stopped.tokens, stopped.finish_reason, stopped.text) == (3, "stop", "9 9")
        assert (cut.tokens, cut.finish_reason) == (6, "length")


def test_from_pretrained_uses_the_gpu_when_there_is_one(tiny_model_dir, monkeypatch):
    """On a GPU machine the in-process sampler (local runs, the ``transformers`` backend) loads
    the model on the GPU in bf16; on a CPU machine in fp32 as before."""
    from o1pruner.sampling import hf

    assert hf.default_placement(True) == ("cuda", torch.bfloat16)
    assert hf.default_placement(False) == ("cpu", torch.float32)
    sampler = HFSampler.from_pretrained(str(tiny_model_dir), batch_size=2)
    assert sampler.model.device.type == "cpu" and sampler.model.dtype == torch.float32
    placed = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, device: placed.append(device) or self)
    sampler = HFSampler.from_pretrained(str(tiny_model_dir), batch_size=2)
    assert placed == ["cuda"] and sampler.model.dtype == torch.bfloat16


def test_generate_kwargs_reach_every_batch(tiny_model_dir):
    """Extra ``generate`` options (here ``bad_words_ids``, which the redundancy-oracle benchmark
    uses to keep the testbed model from opening a kind of redundancy) apply to every batch: the
    token a random model generates most often greedily is never generated once it is banned, and
    the sampler's own parameters cannot be overridden through them."""
    import collections

    import pytest

    sampler = HFSampler.from_pretrained(str(tiny_model_dir), batch_size=2)
    generate, rows = sampler.model.generate, []

    def spy(**kwargs):  # the generated ids, before decoding (decoded text does not re-tokenize 1:1)
        out = generate(**kwargs)
        rows.extend(out[:, kwargs["input_ids"].shape[1]:].tolist())
        return out

    sampler.model.generate = spy
    params = GenerationParams(n=1, temperature=0.0, top_p=1.0, max_tokens=8, seed=0)
    prompts = [(f"p{i}", [{"role": "user", "content": f"What is {i} + {i}?"}]) for i in range(4)]
    free = dict(sampler.generate(prompts, params))
    top, _ = collections.Counter(t for row in rows for t in row).most_common(1)[0]
    rows.clear()
    banned = HFSampler(sampler.model, sampler.tokenizer, batch_size=2, generate_kwargs={"bad_words_ids": [[top]]})
    out = dict(banned.generate(prompts, params))
    assert sorted(out) == sorted(free) and len(rows) == 4  # two batches, both with the option
    assert all(top not in row for row in rows)
    with pytest.raises(ValueError, match="max_new_tokens"):
        HFSampler(sampler.model, sampler.tokenizer, generate_kwargs={"max_new_tokens": 3})
