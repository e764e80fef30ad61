"""The training loop: length-harmonizing fine-tuning (O1-Pruner) and the SFT / DPO baselines.

- AdamW, gradient accumulation to ``batchSize`` examples per optimizer step, gradient-norm
  clipping, cosine/linear/constant schedule with warm-up (transformers' schedulers).
- Precision (:func:`precision_policy`): fp32 on CPU. On a GPU without DeepSpeed the weights the
  optimizer steps stay fp32 (the master copy) and the forward runs under ``torch.autocast``
  (bf16): AdamW updates at the paper's lr 2e-7 are far below bf16's resolution (~1/128 relative)
  and would round away on bf16 weights. Under DeepSpeed the model is bf16 and DeepSpeed's bf16
  optimizer keeps the fp32 master partitions. Optional gradient checkpointing; full /
  freeze-first-N / LoRA.
- Several ranks (``world_size`` > 1): every rank gets the same number of units in every
  optimizer step (:func:`shard_step`): a short step is padded with zero-weight copies of its
  shortest unit, so every rank runs the same number of forward/backward passes (ZeRO-3 gathers
  parameters in every forward; a rank with nothing to do would hang the others) and no unit is
  dropped. Each real unit's loss is weighted ``world_size / units_in_step``, so the back end's
  average over ranks is exactly the mean over the step's units, however unevenly they fell.
- The frozen reference π_ref is the initial policy (paper Sec. 3.2): its sequence log-probs
  are computed once before the first step, stored next to the checkpoints, and reused.
- Length bucketing: the examples of one optimizer step are sorted by length before being cut
  into micro-batches. The step's gradient is the same (every micro-batch loss is weighted by
  its share of the step), only padding shrinks.
- Checkpoints every ``checkpointEverySteps`` with optimizer, scheduler, RNG and data position,
  uploaded to storage with a completion marker written last; ``train`` resumes from the
  latest complete checkpoint. SIGTERM (pod preemption) checkpoints at the next step boundary.
- On a GPU cluster with DeepSpeed installed, ``deepspeed.initialize`` takes over optimizer
  sharding with the ZeRO config from :mod:`o1pruner.deepspeed_config` (not exercised on CPU).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from o1pruner.engines import DeepSpeedEngine, make_engine, rng_state, set_rng_state, uses_deepspeed
from o1pruner.logprobs import sequence_logprobs
from o1pruner.loss import dpo_loss, o1_pruner_loss, sft_loss
from o1pruner.prompts import build_messages
from o1pruner.spec import PromptSpec, TrainingSpec
from o1pruner.storage import Storage

log = logging.getLogger(__name__)

CHECKPOINTS = "train/checkpoints"
REF_LOGPROBS = "train/reference_logprobs.json"


# --------------------------------------------------------------------------- tokenisation
def tokenize_pair(tokenizer, messages: list[dict], text: str, max_length: int, add_eos: bool = True):
    """``(input_ids, loss_mask)`` of prompt + solution, the solution truncated to the cutoff."""
    prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "input_ids"):
        prompt_ids = prompt_ids["input_ids"]
    prompt_ids = list(prompt_ids)
    answer_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    room = max(max_length - len(prompt_ids), 1)
    answer_ids = answer_ids[:room]
    ids = prompt_ids + answer_ids
    mask = [0] * len(prompt_ids) + [1] * len(answer_ids)
    return ids, mask


def collate(seqs: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad a list of ``(ids, loss_mask)`` into tensors."""
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    loss_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, mask) in enumerate(seqs):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        loss_mask[i, : len(ids)] = torch.tensor(mask)
    return input_ids, attention, loss_mask


@dataclass
class Unit:
    """One training unit: a sequence (O1-Pruner, SFT) or a chosen/rejected pair (DPO)."""

    seqs: list[tuple[list[int], list[int]]]
    advantage: float = 0.0
    ref: list[float] = field(default_factory=list)  # mean logp (o1) or sum logp (dpo) per seq
    reward: float = 0.0
    length: int = 0
    correct: float = 0.0

    @property
    def n_tokens(self) -> int:
        return sum(len(ids) for ids, _ in self.seqs)


def build_units(method: str, examples: list[dict], tokenizer, prompt: PromptSpec, max_length: int, problems: dict):
    """Tokenise examples (``problems`` maps problem_id → problem text)."""

    def enc(rec: dict):
        messages = build_messages(problems[rec["problem_id"]], prompt)
        return tokenize_pair(tokenizer, messages, rec["text"], max_length, add_eos=rec.get("finish_reason") != "length")

    units = []
    for ex in examples:
        if method == "dpo":
            units.append(Unit(seqs=[enc(ex["chosen"]), enc(ex["rejected"])], length=ex["chosen"]["length"], correct=1.0))
        else:
            units.append(
                Unit(
                    seqs=[enc(ex)],
                    advantage=float(ex.get("advantage", 0.0)),
                    reward=float(ex.get("reward", 0.0)),
                    length=int(ex["length"]),
                    correct=float(bool(ex["correct"])),
                )
            )
    return units


# --------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class Precision:
    """How the policy is held and run.

    ``param_dtype`` is the dtype of the weights the optimizer steps (the master copy);
    ``autocast`` the forward's compute dtype under ``torch.autocast`` (``None``: no autocast).
    """

    param_dtype: torch.dtype
    autocast: torch.dtype | None = None

    def forward_context(self, device_type: str):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.autocast)


def precision_policy(device_type: str, deepspeed: bool, bf16: bool | None = None) -> Precision:
    """The dtype policy (pure): bf16 compute by default on CUDA, never bf16 master weights
    outside DeepSpeed.

    - no bf16 (CPU by default): fp32 weights, no autocast;
    - bf16 with DeepSpeed: bf16 weights; DeepSpeed's bf16/ZeRO optimizer keeps fp32 master
      partitions and steps those;
    - bf16 without DeepSpeed: fp32 weights (the optimizer's master copy) and the forward under
      ``torch.autocast(bfloat16)``. ``bf16=True`` on CPU takes the same path (CPU autocast),
      which is how the tests exercise it.
    """
    if bf16 is None:
        bf16 = device_type == "cuda"
    if not bf16:
        return Precision(torch.float32)
    if deepspeed:
        return Precision(torch.bfloat16)
    return Precision(torch.float32, torch.bfloat16)


def pick_device_dtype(training: TrainingSpec | None = None) -> tuple[torch.device, torch.dtype]:
    """This rank's device and the dtype to load the policy in (:func:`precision_policy`;
    without a spec, the no-DeepSpeed policy: fp32 weights)."""
    deepspeed = training is not None and uses_deepspeed(training)
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    else:
        device = torch.device("cpu")
    return device, precision_policy(device.type, deepspeed).param_dtype


def load_policy(model_path: str, training: TrainingSpec, dtype: torch.dtype, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
    model = apply_trainable(model, training)
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.config.use_cache = False
    return model, tokenizer


def apply_trainable(model, training: TrainingSpec):
    """Full fine-tune, freeze the embeddings and the first N decoder layers, or wrap in LoRA."""
    mode = training.trainable.mode
    if mode == "freeze-first":
        layers = model.get_decoder().layers
        n = training.trainable.freeze_first_n
        if n > len(layers):
            raise ValueError(f"spec.training.trainable.freezeFirstN={n} but the model has {len(layers)} layers")
        model.get_input_embeddings().requires_grad_(False)
        for layer in layers[:n]:
            layer.requires_grad_(False)
    elif mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = training.trainable.lora
        model = get_peft_model(
            model,
            LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules),
        )
    return model


# --------------------------------------------------------------------------- losses per method
def _forward(model, unit_list: list[Unit], pad_id: int, device, precision: Precision | None = None):
    seqs = [s for u in unit_list for s in u.seqs]
    ids, att, mask = (t.to(device) for t in collate(seqs, pad_id))
    autocast = precision.autocast if precision is not None else None
    return sequence_logprobs(model, ids, att, mask, autocast=autocast)


@torch.no_grad()
def compute_reference(
    model, units: list[Unit], method: str, pad_id: int, device, micro: int, precision: Precision | None = None
) -> None:
    """Fill ``unit.ref`` with the frozen reference's log-probs (the initial policy), computed
    with the same precision as the training forward (so the first ratio is exactly 1)."""
    model.eval()
    for i in tqdm(range(0, len(units), micro), desc="reference log-probs", unit="batch"):
        chunk = units[i : i + micro]
        s, n = _forward(model, chunk, pad_id, device, precision)
        vals = (s / n.clamp(min=1)) if method == "o1-pruner" else s
        vals = vals.tolist()
        for j, u in enumerate(chunk):
            k = len(u.seqs)
            u.ref = vals[j * k : (j + 1) * k]
    model.train()


def micro_loss(
    model,
    chunk: list[Unit],
    method: str,
    training: TrainingSpec,
    pad_id: int,
    device,
    real: list[bool] | None = None,
    precision: Precision | None = None,
):
    """Loss (mean over the micro-batch's real units) and stats for one micro-batch.

    ``real[k]`` is False for a zero-weight padding unit: it runs through the forward (every
    rank does the same passes) but not into the loss. With no real unit the loss is a zero
    that still reaches every parameter, so the backward (and its collectives) runs as usual.
    """
    s, n = _forward(model, chunk, pad_id, device, precision)
    stats = {"clip_fraction": 0.0, "clip_fraction_positive": 0.0, "clip_fraction_negative": 0.0}
    if real is not None and not all(real):
        keep = [k for k, r in enumerate(real) if r]
        if not keep:
            return s.sum() * 0.0, stats
        chunk = [chunk[k] for k in keep]
        per_unit = len(s) // len(real)
        rows = torch.tensor([k * per_unit + j for k in keep for j in range(per_unit)], device=s.device)
        s, n = s[rows], n[rows]
    if method == "o1-pruner":
        ref = torch.tensor([u.ref[0] for u in chunk], device=device, dtype=s.dtype)
        adv = torch.tensor([u.advantage for u in chunk], device=device, dtype=s.dtype)
        out = o1_pruner_loss(s / n.clamp(min=1), ref, adv, training.clip_epsilon)
        stats.update(clip_fraction=out.clip_fraction, clip_fraction_positive=out.clip_fraction_positive,
                     clip_fraction_negative=out.clip_fraction_negative)
        return out.loss, stats
    if method == "sft":
        return sft_loss(s, n), stats
    pc, pr = s[0::2], s[1::2]
    rc = torch.tensor([u.ref[0] for u in chunk], device=device, dtype=s.dtype)
    rr = torch.tensor([u.ref[1] for u in chunk], device=device, dtype=s.dtype)
    return dpo_loss(pc, pr, rc, rr, training.dpo_beta), stats


# --------------------------------------------------------------------------- data order
def step_batches(n_units: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Unit indices of each optimizer step of an epoch (seeded permutation, last step may be short)."""
    order = list(range(n_units))
    random.Random(seed * 1000003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_units, batch_size)]


def shard_step(step: list[int], world_size: int, rank: int) -> tuple[list[int], int]:
    """This rank's units of one optimizer step and how many zero-weight padding slots it adds.

    Every rank gets ``ceil(len(step) / world_size)`` slots: its strided share of the step,
    then padding up to that count (``step[rank::world_size]`` differs by at most one between
    ranks, and a rank past the end of a short last step gets only padding). Nothing is
    dropped; padding slots carry weight 0 (see :func:`unit_weight`).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    mine = step[rank::world_size]
    return mine, math.ceil(len(step) / world_size) - len(mine)


def unit_weight(world_size: int, units_in_step: int) -> float:
    """Loss weight of one real unit on its rank: the back end averages over ``world_size``
    ranks, so ``world_size / units_in_step`` makes the step's loss the plain mean over its
    units whichever rank they fell on (padding units weigh 0)."""
    return world_size / units_in_step


def bucket_micro(indices: list[int], units: list[Unit], micro: int, n_pad: int = 0) -> list[list[int | None]]:
    """Length bucketing: sort a step's units by token count, then cut into micro-batches.
    ``n_pad`` padding slots (``None``) go last, so their micro-batches are the short ones."""
    ordered: list[int | None] = sorted(indices, key=lambda i: units[i].n_tokens)
    ordered += [None] * n_pad
    return [ordered[i : i + micro] for i in range(0, len(ordered), micro)]


def padding_waste(groups: list[list[int | None]], units: list[Unit]) -> float:
    """Fraction of padded positions over all micro-batches (padding units not counted)."""
    total = real = 0
    for g in groups:
        lens = [len(ids) for i in g if i is not None for ids, _ in units[i].seqs]
        if not lens:
            continue
        total += max(lens) * len(lens)
        real += sum(lens)
    return 1.0 - real / total if total else 0.0


# --------------------------------------------------------------------------- checkpoints
def trainable_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.named_parameters() if v.requires_grad}


def latest_checkpoint(store: Storage) -> str | None:
    """Key prefix of the newest *complete* checkpoint (half-written ones are never picked)."""
    steps = sorted((n for n in store.list_dirs(CHECKPOINTS) if n.startswith("step-")), reverse=True)
    for name in steps:
        prefix = f"{CHECKPOINTS}/{name}"
        if store.is_dir_complete(prefix):
            return prefix
    return None


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _barrier() -> None:
    if _distributed():
        torch.distributed.barrier()


def _sum_over_ranks(values: list[float], device) -> list[float]:
    """Element-wise sum of per-rank numbers (identity on one process)."""
    if not _distributed() or torch.distributed.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def save_checkpoint(store: Storage, engine, state: dict, keep: int, rank: int = 0) -> str:
    """Every rank uploads its part (weights/optimizer shards, its RNG); rank 0 writes the
    completion marker last, after a barrier, then prunes old complete checkpoints."""
    prefix = f"{CHECKPOINTS}/step-{state['global_step']:08d}"
    with tempfile.TemporaryDirectory(prefix="o1pruner-ckpt-") as tmp:
        engine.save(tmp)
        torch.save(rng_state(), os.path.join(tmp, f"rng-{rank}.pt"))
        if rank == 0:
            Path(tmp, "state.json").write_text(json.dumps(state))
        store.upload_dir(tmp, prefix, complete=False)
    _barrier()
    if rank == 0:
        store.commit_dir(prefix, {"global_step": state["global_step"]})
        complete = [d for d in sorted(store.list_dirs(CHECKPOINTS), reverse=True) if d.startswith("step-")]
        for old in [d for d in complete if store.is_dir_complete(f"{CHECKPOINTS}/{d}")][keep:]:
            store.delete_prefix(f"{CHECKPOINTS}/{old}")
        log.info("checkpoint saved: %s", store.uri(prefix))
    _barrier()
    return prefix


def load_checkpoint(store: Storage, prefix: str, engine, rank: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix="o1pruner-ckpt-") as tmp:
        store.download_dir(prefix, tmp, require_complete=True)
        engine.load(tmp)
        set_rng_state(torch.load(os.path.join(tmp, f"rng-{rank}.pt"), weights_only=False))
        return json.loads(Path(tmp, "state.json").read_text())


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    model: object
    engine: object
    steps: int
    resumed_from: str | None
    history: list[dict]
    padding_waste: float
    seconds: float


class _Preempted:
    """Turns SIGTERM into a flag checked at step boundaries (checkpoint, then exit)."""

    def __init__(self) -> None:
        self.flag = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread
            self._old = None
        return self

    def _handle(self, *_):
        self.flag = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


class PreemptedError(RuntimeError):
    """Training stopped on SIGTERM after saving a checkpoint."""


def train(
    model,
    tokenizer,
    units: list[Unit],
    training: TrainingSpec,
    store: Storage,
    *,
    method: str | None = None,
    metrics=None,
    max_steps: int | None = None,
    on_step: Callable[[dict], None] | None = None,
    world_size: int = 1,
    rank: int = 0,
    precision: Precision | None = None,
) -> TrainResult:
    """Run (or resume) training over ``units``; returns the per-step history.

    ``precision`` defaults to :func:`precision_policy` for the model's device and back end.
    With ``world_size`` > 1 every rank runs this over the same ``units``; the history's loss,
    clip fraction and tokens are those of the whole step (summed over ranks).
    """
    from transformers import get_scheduler

    method = method or training.method
    device = next(model.parameters()).device
    if precision is None:
        precision = precision_policy(device.type, uses_deepspeed(training))
    pad_id = tokenizer.pad_token_id
    micro = training.micro_batch_size
    torch.manual_seed(training.seed)
    random.seed(training.seed)

    if method in ("o1-pruner", "dpo"):
        if store.exists(REF_LOGPROBS):
            refs = store.read_json(REF_LOGPROBS)
            if len(refs) != len(units):
                raise RuntimeError(f"{REF_LOGPROBS} has {len(refs)} entries for {len(units)} training units")
            for u, r in zip(units, refs, strict=True):
                u.ref = r
        else:
            compute_reference(model, units, method, pad_id, device, micro, precision)
            if rank == 0:
                store.write_json(REF_LOGPROBS, [u.ref for u in units])

    steps_per_epoch = math.ceil(len(units) / training.batch_size)
    total_steps = steps_per_epoch * training.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=training.weight_decay)
    scheduler = get_scheduler(
        training.lr_scheduler,
        optimizer,
        num_warmup_steps=int(training.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    engine = make_engine(model, optimizer, scheduler, training, world_size)

    state = {"global_step": 0, "epoch": 0, "step_in_epoch": 0, "method": method}
    resumed = latest_checkpoint(store)
    if resumed:
        state = load_checkpoint(store, resumed, engine, rank)
        log.info("resumed from %s at step %d", store.uri(resumed), state["global_step"])

    history: list[dict] = []
    wastes: list[float] = []
    model.train()
    t_start = time.monotonic()
    bar = tqdm(total=total_steps, initial=state["global_step"], desc=f"training ({method})", unit="step")
    with _Preempted() as preempt:
        for epoch in range(state["epoch"], training.epochs):
            batches = step_batches(len(units), training.batch_size, training.seed, epoch)
            start = state["step_in_epoch"] if epoch == state["epoch"] else 0
            for s_idx in range(start, len(batches)):
                if max_steps is not None and state["global_step"] >= max_steps:
                    break
                t0 = time.monotonic()
                step = batches[s_idx]
                mine, n_pad = shard_step(step, world_size, rank)
                filler = min(step, key=lambda i: units[i].n_tokens)  # what a padding slot runs
                groups = bucket_micro(mine, units, micro, n_pad)
                wastes.append(padding_waste(groups, units))
                scale = unit_weight(world_size, len(step))
                loss_sum, clip_sum, tokens = 0.0, 0.0, 0
                clip_pos, clip_neg = 0.0, 0.0  # the clip fraction split by the advantage's sign
                for j, g in enumerate(groups):
                    chunk = [units[filler if i is None else i] for i in g]
                    real = [i is not None for i in g]
                    loss, st = micro_loss(model, chunk, method, training, pad_id, device, real, precision)
                    weight = sum(real) * scale
                    engine.backward(loss * weight, last_micro=j == len(groups) - 1)
                    loss_sum += loss.item() * weight
                    clip_sum += st["clip_fraction"] * weight
                    clip_pos += st["clip_fraction_positive"] * weight
                    clip_neg += st["clip_fraction_negative"] * weight
                    tokens += sum(u.n_tokens for u, r in zip(chunk, real, strict=True) if r)
                grad_norm = engine.step()
                if world_size > 1:
                    loss_sum, clip_sum, clip_pos, clip_neg, tokens = _sum_over_ranks(
                        [loss_sum, clip_sum, clip_pos, clip_neg, tokens], device)
                    loss_sum, clip_sum, tokens = loss_sum / world_size, clip_sum / world_size, int(tokens)
                    clip_pos, clip_neg = clip_pos / world_size, clip_neg / world_size
                state.update(global_step=state["global_step"] + 1, epoch=epoch, step_in_epoch=s_idx + 1)
                if s_idx + 1 == len(batches):
                    state.update(epoch=epoch + 1, step_in_epoch=0)
                dt = time.monotonic() - t0
                chosen = [units[i] for i in step]
                rec = {
                    "step": state["global_step"],
                    "epoch": epoch + (s_idx + 1) / len(batches),
                    "loss": loss_sum,
                    "clip_fraction": clip_sum,
                    "clip_fraction_positive": clip_pos,
                    "clip_fraction_negative": clip_neg,
                    "grad_norm": grad_norm,
                    "learning_rate": engine.lr(),
                    "reward_mean": sum(u.reward for u in chosen) / len(chosen),
                    "mean_length": sum(u.length for u in chosen) / len(chosen),
                    "accuracy": sum(u.correct for u in chosen) / len(chosen),
                    "tokens": tokens,
                    "tokens_per_second": tokens / dt if dt > 0 else 0.0,
                }
                history.append(rec)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum:.4f}", lr=f"{rec['learning_rate']:.2e}")
                if metrics is not None:
                    metrics.train_step(
                        step=rec["step"], epoch=rec["epoch"], loss=rec["loss"], reward_mean=rec["reward_mean"],
                        clip_fraction=rec["clip_fraction"], mean_length=rec["mean_length"], accuracy=rec["accuracy"],
                        clip_fraction_positive=clip_pos, clip_fraction_negative=clip_neg,
                        learning_rate=rec["learning_rate"], tokens=tokens, tokens_per_second=rec["tokens_per_second"],
                    )
                    metrics.push()
                if on_step is not None:
                    on_step(rec)
                last = state["global_step"] == total_steps
                if preempt.flag or (state["global_step"] % training.checkpoint_every_steps == 0 and not last):
                    save_checkpoint(store, engine, dict(state), training.keep_checkpoints, rank)
                if preempt.flag:
                    bar.close()
                    raise PreemptedError(f"SIGTERM: checkpointed at step {state['global_step']}")
            else:
                continue
            break
    bar.close()
    return TrainResult(
        model=engine.unwrap(),
        engine=engine,
        steps=state["global_step"],
        resumed_from=resumed,
        history=history,
        padding_waste=sum(wastes) / len(wastes) if wastes else 0.0,
        seconds=time.monotonic() - t_start,
    )


def save_model(model, tokenizer, store: Storage, prefix: str = "train/model", engine=None, rank: int = 0) -> str:
    """Save the trained model (LoRA merged) with config and tokenizer, completion marker last.

    Under DeepSpeed ZeRO-3 the weights are partitioned: every rank joins the gather and rank 0
    writes the 16-bit consolidated state dict."""
    if isinstance(engine, DeepSpeedEngine):
        with tempfile.TemporaryDirectory(prefix="o1pruner-model-") as tmp:
            engine.engine.save_16bit_model(tmp, "pytorch_model.bin")
            if rank == 0:
                model.config.use_cache = True
                model.config.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                store.delete_prefix(prefix)
                store.upload_dir(tmp, prefix, complete=True)
        _barrier()
        return store.uri(prefix)
    if rank != 0:  # plain torch keeps the same weights on every rank: rank 0 writes them
        _barrier()
        return store.uri(prefix)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with tempfile.TemporaryDirectory(prefix="o1pruner-model-") as tmp:
        model.config.use_cache = True
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        store.delete_prefix(prefix)
        store.upload_dir(tmp, prefix, complete=True)
    _barrier()
    return store.uri(prefix)
