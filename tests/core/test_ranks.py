"""Several ranks: every rank runs the same number of units each step, and the step's loss is
the mean over its units however they were shared out (2 CPU ranks under torchrun, gloo)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from o1pruner import training as tr

WORKER = Path(__file__).with_name("ranks_worker.py")
RUN_TIMEOUT_S = 300  # a hung collective fails the test instead of blocking the suite


@pytest.mark.parametrize("n_units", [1, 2, 3, 5, 7, 8, 16, 17])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_every_rank_gets_the_same_number_of_slots_and_no_unit_is_lost(n_units, world_size):
    step = list(range(100, 100 + n_units))
    shares = [tr.shard_step(step, world_size, r) for r in range(world_size)]
    slots = {len(mine) + pad for mine, pad in shares}
    assert slots == {-(-n_units // world_size)}  # ceil: the same count on every rank
    real = sorted(i for mine, _ in shares for i in mine)
    assert real == step  # every unit exactly once, none dropped
    # the weights make the ranks' average the plain mean over the step's units
    assert sum(len(mine) * tr.unit_weight(world_size, n_units) for mine, _ in shares) / world_size == pytest.approx(1.0)


def test_shard_step_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        tr.shard_step([1, 2, 3], 2, 2)


def test_padding_slots_go_last_and_count_no_waste():
    class U:
        def __init__(self, n):
            self.seqs = [([0] * n, [1] * n)]

        @property
        def n_tokens(self):
            return len(self.seqs[0][0])

    units = [U(5), U(3)]
    groups = tr.bucket_micro([0, 1], units, 2, n_pad=1)
    assert groups == [[1, 0], [None]]
    assert tr.padding_waste(groups, units) == pytest.approx(1 - 8 / 10)


def _run(cmd: list[str], cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{cmd[-6:]} did not finish in {RUN_TIMEOUT_S}s (a rank hung?):\n{out[-3000:]}")
    assert proc.returncode == 0, out[-5000:]


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, tmp_path_factory) -> Path:
    """The reference: the same training in one process (this one)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ranks_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    d = tmp_path_factory.mktemp("one-process")
    worker.main(str(tiny_model_dir), str(d / "store"), str(d / "out"))
    return d / "out"


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param([], id="torch-gloo"),
        # DeepSpeed on the CPU (gloo, fp32) with the loop's torch AdamW: ZeRO-2 with the optimizer
        # offloaded (refused at start-up before zero_force_ds_cpu_optimizer: false), and ZeRO-3,
        # whose forward gathers parameters from every rank (an idle rank would hang it)
        pytest.param(["2", "offload"], id="deepspeed-zero2-offload"),
        pytest.param(["3"], id="deepspeed-zero3"),
    ],
)
def test_two_gloo_ranks_train_like_one_process_through_a_step_with_an_idle_rank(
    engine, one_process, tiny_model_dir, tmp_path
):
    if engine:
        pytest.importorskip("deepspeed")
    two = tmp_path / "two"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(WORKER), str(tiny_model_dir), str(tmp_path / "store"), str(two), *engine], tmp_path)

    ref = load_file(str(one_process / "rank-0.safetensors"))
    r0, r1 = (load_file(str(two / f"rank-{r}.safetensors")) for r in (0, 1))
    hist = [json.loads((d / "rank-0.json").read_text())["history"] for d in (one_process, two)]
    assert [h["step"] for h in hist[1]] == [1, 2]  # steps of 4 and 1 units: both ran
    # the step's loss and token count are those of the whole step, as one process sees them
    for a, b in zip(hist[0], hist[1], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
        assert b["tokens"] == a["tokens"]
    # the ranks hold identical weights, and the same as one process (unbiased averaging):
    # the difference is rounding, tiny next to what training moved
    from transformers import AutoModelForCausalLM

    init = dict(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).named_parameters())
    assert r0.keys() == ref.keys()
    moved = sum(float((ref[k] - init[k].detach()).norm() ** 2) for k in ref) ** 0.5
    for k in ref:
        assert torch.equal(r0[k], r1[k]), k
    diff = sum(float((r0[k] - ref[k]).norm() ** 2) for k in ref) ** 0.5
    assert moved > 0 and diff < 1e-3 * moved, (diff, moved)


def test_padding_units_run_but_do_not_count(tiny_model_dir):
    """A micro-batch mixing real and padding units has the loss of its real units alone; an
    all-padding one has loss 0 with gradients (zero) on every parameter."""
    from o1pruner.spec import PromptSpec, TrainingSpec

    spec = TrainingSpec(deepspeed={"enabled": False}, max_length=64)
    model, tok = tr.load_policy(str(tiny_model_dir), spec, torch.float32, torch.device("cpu"))
    ex = [{"problem_id": "p", "length": 3, "text": t, "correct": True, "advantage": a, "finish_reason": "stop"}
          for t, a in (("The answer is 4.", 1.0), ("Hmm, let me see. The answer is 5.", -1.0))]
    units = tr.build_units("o1-pruner", ex, tok, PromptSpec(), 64, {"p": "What is 2 + 2?"})
    tr.compute_reference(model, units, "o1-pruner", tok.pad_token_id, torch.device("cpu"), 2)
    for u in units:
        u.ref = [u.ref[0] - 0.05]  # ratio != 1, so the loss is not trivially -A
    cpu = torch.device("cpu")
    alone, _ = tr.micro_loss(model, units[:1], "o1-pruner", spec, tok.pad_token_id, cpu)
    mixed, _ = tr.micro_loss(model, units, "o1-pruner", spec, tok.pad_token_id, cpu, real=[True, False])
    assert mixed.item() == pytest.approx(alone.item(), rel=1e-5)
    empty, _ = tr.micro_loss(model, units, "o1-pruner", spec, tok.pad_token_id, cpu, real=[False, False])
    empty.backward()
    assert empty.item() == 0.0
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters() if p.requires_grad)
