"""Train the testbed's reference model and save it as a Hugging Face model.

The model is a small Llama (``LlamaForCausalLM``) trained from scratch, or a pretrained embedded
model (``Recipe.init``: SmolLM2-135M-Instruct for ``smollm2-longthought``) warmed up, with
next-token cross-entropy on the answer tokens of traces drawn from
:func:`o1pruner.testbed.traces.sample_trace` (prompt tokens masked; the prompt in the model's own
chat template, as the pipeline sends it with ``prompt.system: ""``), fresh data every step,
bucketed by length so that a batch is not mostly padding, AdamW with linear warm-up and cosine
decay. Everything follows from the :class:`Recipe`: the same recipe
on the same torch build and the same kind of CPU gives the same weights (a fixed number of
threads, so reductions split the same way), and the cache directory is named by a hash of the
recipe, so changing any setting builds a new model instead of reusing a stale one. Another kind
of CPU builds other weights: torch's kernels round differently per instruction set and CPU
model (the previous recipe ``a14e7d79c290`` ended at loss 0.1198 on one AMD EPYC and 0.1111 on
an Intel Xeon, with different held-out accuracy, and at yet another loss on an AMD EPYC with
AVX-512), so the build records the CPU, torch's CPU capability and the weights' SHA-256
(:func:`build_identity`) and reports name the build they ran on.

The directory holds ``config.json``, ``generation_config.json``, ``model.safetensors``, the
tokenizer with its chat template and ``testbed.json`` (the recipe and the build's own figures).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from o1pruner.testbed.traces import TaskSpec, TraceStyle, make_problem, recipe_dict, sample_trace

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ModelShape:
    hidden_size: int = 160
    intermediate_size: int = 480
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the built model."""

    task: TaskSpec = field(default_factory=TaskSpec)
    style: TraceStyle = field(default_factory=TraceStyle)
    shape: ModelShape = field(default_factory=ModelShape)
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 1234
    #: Traces are drawn for this many steps at once, sorted by length and cut into batches run
    #: in a shuffled order, so a batch pads to a length close to its own (1 = no bucketing).
    length_buckets: int = 8
    #: CPU threads torch uses to build (part of the recipe: float reductions split per thread).
    threads: int = 2
    #: An embedded pretrained model (``models.EMBEDDED_MODELS``) to warm up on the traces, in its
    #: own tokenizer and chat template, instead of a model trained from scratch (``shape`` unused).
    init: str | None = None

    def to_dict(self) -> dict:
        out = {**recipe_dict(self.task, self.style), "shape": asdict(self.shape), "steps": self.steps,
               "batch_size": self.batch_size, "learning_rate": self.learning_rate,
               "warmup_steps": self.warmup_steps, "weight_decay": self.weight_decay, "seed": self.seed,
               "length_buckets": self.length_buckets, "threads": self.threads}
        if self.init is not None:  # absent from-scratch, so their digests stay what they were
            out = {**out, "init": self.init}
            del out["shape"]
        return out

    def digest(self) -> str:
        """A short hash of the recipe and the builder's format version (the cache key)."""
        # format 2: length-bucketed batches, each batch's summed loss over its group's mean tokens
        blob = json.dumps({"format": 2, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


#: The built-in testbed models (``model.source: embedded:<name>``). ``longthought-smoke`` is the
#: same architecture and vocabulary, barely trained (seconds): for tests of the plumbing only.
#: ``smollm2-longthought`` is SmolLM2-135M-Instruct after a short supervised warm-up on the same
#: traces in its own tokenizer and chat template: the pretrained path's long-thought model.
TESTBED_RECIPES: dict[str, Recipe] = {
    "longthought-arith": Recipe(),
    "longthought-smoke": Recipe(steps=4, batch_size=8, warmup_steps=1, shape=ModelShape(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)),
    "smollm2-longthought": Recipe(init="smollm2-135m-instruct", steps=60, batch_size=8, learning_rate=1e-4,
                                  warmup_steps=6),
    "longthought-concise": Recipe(style=TraceStyle(p_concise=0.1)),
    #: Its concise mode as reliable as its verbose mode's checked answer: concise traces are the
    #: minimal traces, so leaving the redundancy out costs nothing the data could teach. (Seed
    #: 1235: seed 1234's build, on an AVX-512 CPU, answered 0.590 of the held-out problems, below
    #: the testbed's 0.6; docs/testbed.md.)
    "longthought-concise-exact": Recipe(style=TraceStyle(p_concise=0.1, concise_error_rate=0.0), seed=1235),
}


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warm-up to ``learning_rate``, then cosine decay to 10 % of it."""
    if step < recipe.warmup_steps:
        return recipe.learning_rate * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return recipe.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _example(rng: random.Random, tok, recipe: Recipe) -> tuple[list[int], list[int]]:
    """One training row: (prompt + trace + EOS) ids and its loss mask (1 on the trace and EOS),
    the ``(ids, loss_mask)`` pairs :func:`o1pruner.training.collate` pads."""
    p = make_problem(rng, rng.randint(recipe.task.min_ops, recipe.task.max_ops), recipe.task)
    prompt = tok.apply_chat_template([{"role": "user", "content": p.text}], add_generation_prompt=True,
                                     tokenize=False)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tok(sample_trace(p, rng, recipe.style, recipe.task), add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids + [tok.eos_token_id], [0] * len(prompt_ids) + [1] * (len(answer_ids) + 1)


def length_bucketed(examples: list, batch_size: int, rng: random.Random) -> list[list]:
    """``examples`` sorted by length (stable) and cut into batches of ``batch_size``, the batches
    in a random order: each batch pads to a length close to its own rows'."""
    ordered = sorted(examples, key=lambda e: len(e[0]))
    batches_ = [ordered[i: i + batch_size] for i in range(0, len(ordered), batch_size)]
    rng.shuffle(batches_)
    return batches_


def label_tokens(rows: list) -> int:
    """How many tokens of ``rows`` the loss is taken on."""
    return sum(sum(mask) for _, mask in rows)


def batches(rng: random.Random, tok, recipe: Recipe):
    """The build's ``recipe.steps`` training batches as ``(rows, tokens_per_batch)``: fresh
    traces throughout, drawn ``recipe.length_buckets`` steps at a time and bucketed by length.

    ``tokens_per_batch`` is the group's mean number of loss tokens per batch, the divisor of
    every batch's summed loss: a token then weighs the same in a batch of short traces as in one
    of long traces, as in an unbucketed batch. (Dividing by a batch's own token count would give
    the tokens of short traces, and the decisions that make a trace short, more weight: a model
    built so overrates its short-cuts.)"""
    left = recipe.steps
    while left > 0:
        group = min(recipe.length_buckets, left)
        pool = [_example(rng, tok, recipe) for _ in range(group * recipe.batch_size)]
        per_batch = label_tokens(pool) / group
        for rows in length_bucketed(pool, recipe.batch_size, rng):
            yield rows, per_batch
        left -= group


def train_model(recipe: Recipe, progress: bool = True, max_steps: int | None = None):
    """Train the reference model; returns ``(model, tokenizer, figures)``. ``max_steps`` stops
    after that many of the recipe's steps (its schedule unchanged; for benchmarks of the build).

    Runs on ``recipe.threads`` CPU threads whatever the machine has: float reductions are then
    split the same way, so a recipe gives the same weights on any machine with the same torch
    build and the same kind of CPU (another instruction set rounds differently; see the module's
    docstring)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        return _train(recipe, progress, recipe.steps if max_steps is None else min(max_steps, recipe.steps))
    finally:
        torch.set_num_threads(threads)


def _train(recipe: Recipe, progress: bool, steps: int):
    import torch

    torch.manual_seed(recipe.seed)
    model, tok = initial_model(recipe)
    figures = fit(model, tok, recipe, steps, progress)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = pad_id(tok)
    model.generation_config.bos_token_id = tok.bos_token_id
    return model, tok, figures


def pad_id(tok) -> int:
    """The tokenizer's padding id (its end-of-sequence id where it has none)."""
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def initial_model(recipe: Recipe):
    """``(model, tokenizer)`` the build starts from: the pretrained embedded model ``recipe.init``
    with its own tokenizer, else a new Llama of ``recipe.shape`` over the testbed's vocabulary
    (initialised from torch's current seed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if recipe.init is not None:
        from o1pruner.models import EMBEDDED_MODELS, ensure_embedded

        if recipe.init not in EMBEDDED_MODELS:
            raise ValueError(f"recipe init {recipe.init!r} is not a pretrained embedded model ({sorted(EMBEDDED_MODELS)})")
        path = ensure_embedded(recipe.init)
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)
    from o1pruner.testbed.vocab import build_tokenizer

    tok = build_tokenizer(recipe.task, recipe.style)
    config = LlamaConfig(
        vocab_size=len(tok), **asdict(recipe.shape), num_key_value_heads=recipe.shape.num_attention_heads,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, rope_theta=10000.0,
    )
    return LlamaForCausalLM(config), tok


def fit(model, tok, recipe: Recipe, steps: int, progress: bool) -> dict:
    """Train ``model`` on ``steps`` of the recipe's batches (:func:`batches`, seeded by
    ``recipe.seed``); returns the build's figures."""
    import torch

    from o1pruner.training import collate

    rng = random.Random(recipe.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.learning_rate, betas=(0.9, 0.98))
    model.train()
    started, tokens, padded_tokens, loss_value = time.monotonic(), 0, 0, float("nan")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="build testbed model", unit="step")
    for step, (rows, per_batch) in enumerate(batches(rng, tok, recipe)):
        if step >= steps:
            break
        input_ids, mask, loss_mask = collate(rows, pad_id(tok))
        labels = input_ids.masked_fill(loss_mask == 0, -100)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe)
        # the summed token loss over the group's mean tokens per batch (see batches())
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels,
                     num_items_in_batch=torch.tensor(per_batch)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += int(mask.sum())
        padded_tokens += mask.numel()
        loss_value = loss.item()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return {"final_loss": round(loss_value, 4), "train_tokens": tokens,
            "padding_fraction": round(1 - tokens / max(1, padded_tokens), 4),
            "train_seconds": round(time.monotonic() - started, 1),
            "parameters": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def build(dest: Path, recipe: Recipe, progress: bool = True) -> Path:
    """Train and save the model at ``dest`` atomically (a temporary directory, then a rename)."""
    from safetensors.torch import save_file

    from o1pruner.models import atomic_model_dir

    model, tok, figures = train_model(recipe, progress=progress)
    with atomic_model_dir(dest) as tmp:
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        figures["weights_sha256"] = file_sha256(tmp / "model.safetensors")
        model.config.save_pretrained(str(tmp))
        model.generation_config.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "testbed.json").write_text(json.dumps({"recipe": recipe.to_dict(), "digest": recipe.digest(),
                                                      "build": figures}, indent=2) + "\n")
    log.info("built testbed model in %s (%s)", dest, figures)
    return dest


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: What names one build of a testbed model (``testbed.json``'s ``build`` figures and the digest).
IDENTITY_KEYS = ("digest", "final_loss", "train_tokens", "cpu", "cpu_capability", "weights_sha256")


def build_identity(model_dir: Path) -> dict | None:
    """Which build of a testbed model ``model_dir`` holds: the recipe digest, the build's final
    loss and tokens, the CPU it was built on and the weights' SHA-256 (computed here for a
    directory built before the build recorded it). ``None`` for a directory that is not a
    testbed build."""
    meta_file = Path(model_dir) / "testbed.json"
    if not meta_file.exists():
        return None
    meta = json.loads(meta_file.read_text())
    build = dict(meta.get("build", {}), digest=meta.get("digest"))
    if "weights_sha256" not in build and (Path(model_dir) / "model.safetensors").exists():
        build["weights_sha256"] = file_sha256(Path(model_dir) / "model.safetensors")
    return {k: build[k] for k in IDENTITY_KEYS if build.get(k) is not None}


def same_build(a: dict, b: dict) -> bool:
    """Whether two build identities name the same weights: by SHA-256 where both have it, else by
    recipe digest, final loss and trained tokens (all a build recorded before it hashed its
    weights)."""
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return a["weights_sha256"] == b["weights_sha256"]
    keys = ("digest", "final_loss", "train_tokens")
    return all(a.get(k) is not None and a.get(k) == b.get(k) for k in keys)


def ensure_built(name: str, root: Path, progress: bool = True) -> Path:
    """The cached directory of testbed model ``name`` under ``root``, built on first use."""
    if name not in TESTBED_RECIPES:
        raise ValueError(f"unknown testbed model {name!r}; known: {sorted(TESTBED_RECIPES)}")
    recipe = TESTBED_RECIPES[name]
    dest = root / f"{name}-{recipe.digest()}"
    from o1pruner.models import COMPLETE_MARKER

    if (dest / COMPLETE_MARKER).exists():
        return dest
    return build(dest, recipe, progress=progress)
