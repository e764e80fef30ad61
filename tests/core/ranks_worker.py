"""One rank of the multi-rank training test (run under torchrun, or alone as the reference).

Usage: ranks_worker.py MODEL_DIR STORE_DIR OUT_DIR. Trains O1-Pruner on 5 units with batch 4
(steps of 4 and 1 units: with 2 ranks, rank 1 has no real unit in step 2 and runs one
zero-weight padding unit) and writes its trainable weights and history to OUT_DIR/rank-<rank>.*.
"""

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from o1pruner import training as tr
from o1pruner.spec import PromptSpec, StorageSpec, TrainingSpec
from o1pruner.storage import open_storage

N_UNITS = 5


def examples() -> list[dict]:
    return [
        {
            "problem_id": f"p{i}", "length": 4 + 3 * i, "text": "Let me check once more. " * i + f"The answer is {i + 2}.",
            "correct": i % 3 != 0, "reward": 0.0, "advantage": 1.0 - 0.3 * i, "finish_reason": "stop",
        }
        for i in range(N_UNITS)
    ]


def spec() -> TrainingSpec:
    return TrainingSpec(
        learning_rate=1e-3, lr_scheduler="constant", warmup_ratio=0.0, batch_size=4, micro_batch_size=2,
        max_length=96, epochs=1, checkpoint_every_steps=1, deepspeed={"enabled": False}, seed=7,
    )


def main(model_dir: str, store_dir: str, out_dir: str) -> None:
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    t = spec()
    torch.manual_seed(0)
    model, tok = tr.load_policy(model_dir, t, torch.float32, torch.device("cpu"))
    problems = {f"p{i}": f"What is {i} + 2?" for i in range(N_UNITS)}
    units = tr.build_units("o1-pruner", examples(), tok, PromptSpec(), t.max_length, problems)
    store = open_storage(StorageSpec(uri=store_dir))
    result = tr.train(model, tok, units, t, store, world_size=world_size, rank=rank)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tr.trainable_state(model), str(out / f"rank-{rank}.safetensors"))
    (out / f"rank-{rank}.json").write_text(json.dumps({"steps": result.steps, "history": result.history}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
