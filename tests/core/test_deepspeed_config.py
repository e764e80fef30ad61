"""The generated DeepSpeed config passes DeepSpeed's own validation for every spec combination,
and ``deepspeed.initialize`` accepts it with the loop's torch AdamW, CPU offload included."""

import itertools

import pytest

from o1pruner.deepspeed_config import build_deepspeed_config
from o1pruner.spec import TrainingSpec

deepspeed = pytest.importorskip("deepspeed")
from deepspeed.runtime.config import DeepSpeedConfig  # noqa: E402


class _DataParallel:
    """The ``mpu`` DeepSpeedConfig asks for the data-parallel world size (no process group here)."""

    def __init__(self, world_size: int):
        self.world_size = world_size

    def get_data_parallel_world_size(self) -> int:
        return self.world_size


def _combinations():
    for stage, offload_opt, offload_params, bf16 in itertools.product((2, 3), (False, True), (False, True), (True, False)):
        if offload_params and stage == 2:
            continue  # refused by the spec (tested below)
        for batch, micro, world in ((32, 2, 8), (8, 1, 1), (12, 3, 2), (64, 4, 16)):
            yield stage, offload_opt, offload_params, bf16, batch, micro, world


@pytest.mark.parametrize(("stage", "offload_opt", "offload_params", "bf16", "batch", "micro", "world"), list(_combinations()))
def test_every_combination_passes_deepspeeds_validation(monkeypatch, stage, offload_opt, offload_params, bf16,
                                                         batch, micro, world):
    monkeypatch.setattr(deepspeed.comm, "get_rank", lambda group=None: 0)
    training = TrainingSpec(
        batch_size=batch, micro_batch_size=micro, max_grad_norm=0.5,
        deepspeed={"zeroStage": stage, "offloadOptimizer": offload_opt, "offloadParams": offload_params},
    )
    raw = build_deepspeed_config(training, world, bf16=bf16)
    cfg = DeepSpeedConfig(raw, mpu=_DataParallel(world))  # raises on any invalid key or batch arithmetic
    assert cfg.world_size == world
    assert cfg.train_batch_size == batch and cfg.train_micro_batch_size_per_gpu == micro
    assert cfg.gradient_accumulation_steps == batch // (micro * world)
    assert cfg.zero_optimization_stage == stage and cfg.gradient_clipping == 0.5
    assert cfg.bfloat16_config.enabled is bf16 and not cfg.float16_config.enabled
    assert (cfg.zero_config.offload_optimizer is not None) is offload_opt
    assert (cfg.zero_config.offload_param is not None) is offload_params
    # ZeRO-Offload with the loop's torch AdamW: DeepSpeed refuses it at start-up unless this is off
    assert cfg.zero_force_ds_cpu_optimizer is (not offload_opt)
    if stage == 3:
        assert cfg.zero_config.gather_16bit_weights_on_model_save  # save_16bit_model needs it


def test_deepspeed_rejects_what_the_spec_refuses():
    with pytest.raises(ValueError, match="zeroStage 3"):
        build_deepspeed_config(TrainingSpec(deepspeed={"zeroStage": 2, "offloadParams": True}), 1)
    with pytest.raises(ValueError, match="multiple of microBatchSize x world size"):
        build_deepspeed_config(TrainingSpec(batch_size=32, micro_batch_size=2), 5)
