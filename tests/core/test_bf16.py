"""bf16 training keeps fp32 master weights: the paper's lr 2e-7 still moves them.

On a GPU without DeepSpeed the policy is fp32 weights + bf16 autocast; CPU autocast runs the
same code path here (``precision_policy(..., bf16=True)``).
"""

import pytest
import torch

from o1pruner import training as tr
from o1pruner.engines import TorchEngine
from o1pruner.spec import PromptSpec, StorageSpec, TrainingSpec
from o1pruner.storage import open_storage

FP32, BF16 = torch.float32, torch.bfloat16


@pytest.mark.parametrize(
    ("device", "deepspeed", "bf16", "expected"),
    [
        ("cpu", False, None, tr.Precision(FP32)),  # CPU default: plain fp32
        ("cpu", True, None, tr.Precision(FP32)),
        ("cuda", False, None, tr.Precision(FP32, BF16)),  # fp32 master weights, bf16 compute
        ("cuda", True, None, tr.Precision(BF16)),  # DeepSpeed's bf16 optimizer holds fp32 masters
        ("cuda", False, False, tr.Precision(FP32)),
        ("cpu", False, True, tr.Precision(FP32, BF16)),  # the CPU switch onto the GPU's path
    ],
)
def test_precision_policy(device, deepspeed, bf16, expected):
    assert tr.precision_policy(device, deepspeed, bf16) == expected


def test_no_policy_steps_bf16_weights_outside_deepspeed():
    for device in ("cpu", "cuda"):
        for bf16 in (None, True, False):
            assert tr.precision_policy(device, deepspeed=False, bf16=bf16).param_dtype == FP32


def test_cpu_loads_fp32_whatever_the_spec():
    assert tr.pick_device_dtype() == (torch.device("cpu"), FP32)
    assert tr.pick_device_dtype(TrainingSpec(deepspeed={"enabled": True}))[1] == FP32


def _examples(n=4):
    return [
        {
            "problem_id": f"p{i}", "length": 5 + i, "text": "Let me add. " * (1 + i) + f"The answer is {i + 2}.",
            "correct": i % 2 == 0, "reward": 1.0, "advantage": 1.0 if i % 2 == 0 else -1.0, "finish_reason": "stop",
        }
        for i in range(n)
    ]


def _layer_params(model) -> dict[str, torch.Tensor]:
    """The decoder layers' weights (every element gets a gradient, unlike unused vocab rows)."""
    return {k: v.detach().clone() for k, v in model.named_parameters() if ".layers." in k}


def test_tiny_lr_moves_fp32_master_weights_under_bf16_autocast(tiny_model_dir, tmp_path):
    policy = tr.precision_policy("cuda", deepspeed=False)  # what a GPU without DeepSpeed runs
    cpu_policy = tr.precision_policy("cpu", deepspeed=False, bf16=True)
    assert cpu_policy == policy
    spec = TrainingSpec(
        learning_rate=2e-7, lr_scheduler="constant", warmup_ratio=0.0, batch_size=4, micro_batch_size=2,
        max_length=64, epochs=2, checkpoint_every_steps=100, deepspeed={"enabled": False},
    )
    torch.manual_seed(0)
    model, tok = tr.load_policy(str(tiny_model_dir), spec, policy.param_dtype, torch.device("cpu"))
    problems = {f"p{i}": f"What is {i} + 2?" for i in range(4)}
    units = tr.build_units("o1-pruner", _examples(), tok, PromptSpec(), spec.max_length, problems)
    before = _layer_params(model)
    seen_autocast = []
    hook = model.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda _m, _i, out: seen_autocast.append(out.dtype)
    )
    result = tr.train(model, tok, units, spec, open_storage(StorageSpec(uri=str(tmp_path / "s"))),
                      precision=cpu_policy)
    hook.remove()
    assert result.steps == 2
    assert set(seen_autocast) == {BF16}  # the forward really ran in bf16
    after = _layer_params(model)
    assert all(v.dtype == FP32 for v in after.values())
    changed = sum(int((after[k] != before[k]).sum()) for k in before)
    total = sum(v.numel() for v in before.values())
    # AdamW moves every element with a gradient by ~lr per step: fp32 keeps it, bf16 rounds it away
    assert changed / total > 0.95, f"only {changed}/{total} layer weights moved at lr 2e-7"


def test_plain_torch_refuses_bf16_weights(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=BF16)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-7)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    with pytest.raises(ValueError, match=r"torch\.bfloat16.*autocast"):
        TorchEngine(model, opt, sched, max_grad_norm=1.0)


def test_bf16_weights_would_lose_the_update():
    """Why: one AdamW-sized step of 2e-7 on weights of magnitude ~0.02 is below bf16's spacing."""
    w = torch.full((1000,), 0.02)
    assert torch.equal((w.to(BF16) + 2e-7).float(), w.to(BF16).float())
    assert not torch.equal(w + 2e-7, w)
