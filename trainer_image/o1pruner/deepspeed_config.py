"""DeepSpeed JSON config generated from ``spec.training`` (pure; no deepspeed import).

The PyTorchJob passes it to ``o1pruner train`` (ConfigMap file + ``O1PRUNER_DEEPSPEED_CONFIG``);
the training loop may also call :func:`build_deepspeed_config` itself.
"""

from __future__ import annotations

from typing import Any

from o1pruner.spec import TrainingSpec


def gradient_accumulation_steps(training: TrainingSpec, world_size: int) -> int:
    """batchSize / (microBatchSize * world_size); the global batch must divide evenly."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    per_step = training.micro_batch_size * world_size
    if training.batch_size % per_step:
        raise ValueError(
            f"batchSize ({training.batch_size}) must be a multiple of microBatchSize x world size "
            f"({training.micro_batch_size} x {world_size} = {per_step})"
        )
    return training.batch_size // per_step


def build_deepspeed_config(training: TrainingSpec, world_size: int, bf16: bool = True) -> dict[str, Any]:
    """ZeRO-2/3 with bf16 (fp32 with ``bf16=False``: a device without bf16, the CPU tests),
    optional CPU offload, clipping = maxGradNorm.

    Concrete numbers only (no HF-Trainer ``"auto"``), so ``deepspeed.initialize`` takes it as is.
    The optimizer and scheduler stay in the training loop (AdamW + cosine/linear warm-up),
    so the config carries no ``optimizer``/``scheduler`` sections. With ``offloadOptimizer``
    that torch AdamW steps the fp32 master partitions on the CPU; DeepSpeed refuses a client
    optimizer under ZeRO-Offload at ``deepspeed.initialize`` unless
    ``zero_force_ds_cpu_optimizer`` is false (its own CPU Adam is faster but is a compiled op
    the trainer image would have to build).
    """
    ds = training.deepspeed
    gas = gradient_accumulation_steps(training, world_size)
    zero: dict[str, Any] = {
        "stage": ds.zero_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": 500_000_000,
    }
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if ds.zero_stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": 50_000_000,
                "stage3_param_persistence_threshold": 100_000,
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
        if ds.offload_params:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    elif ds.offload_params:
        raise ValueError("offloadParams needs zeroStage 3 (ZeRO-2 does not partition parameters)")
    config: dict[str, Any] = {
        "train_batch_size": training.batch_size,
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": gas,
        "gradient_clipping": training.max_grad_norm,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "zero_optimization": zero,
        "seed": training.seed,
        "steps_per_print": 10,
        "wall_clock_breakdown": False,
    }
    if ds.offload_optimizer:
        config["zero_force_ds_cpu_optimizer"] = False
    return config
