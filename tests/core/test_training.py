"""The training loop on a tiny model: it learns, checkpoints, and resumes to the same weights."""

import pytest
import torch

from o1pruner import training as tr
from o1pruner.spec import PromptSpec, StorageSpec, TrainingSpec
from o1pruner.storage import open_storage


def _examples(n=8):
    ex = []
    for i in range(n):
        short = i % 2 == 0
        ex.append({
            "problem_id": f"p{i // 2}", "sample_index": i % 2, "length": 3 if short else 12,
            "text": "The answer is 4." if short else "Let me think again and again about it. The answer is 5.",
            "correct": short, "reward": 1.0 if short else -1.0, "advantage": 1.0 if short else -1.0,
            "finish_reason": "stop",
        })
    return ex


def _setup(model_dir, spec: TrainingSpec, method="o1-pruner", examples=None):
    torch.manual_seed(0)
    model, tok = tr.load_policy(str(model_dir), spec, torch.float32, torch.device("cpu"))
    problems = {f"p{i}": f"What is {i} + 2?" for i in range(8)}
    units = tr.build_units(method, examples or _examples(), tok, PromptSpec(), spec.max_length, problems)
    return model, tok, units


def _spec(**kw):
    base = dict(learning_rate=5e-3, epochs=2, batch_size=4, micro_batch_size=2, max_length=64,
                checkpoint_every_steps=2, warmup_ratio=0.0, lr_scheduler="constant", keep_checkpoints=5)
    return TrainingSpec(**(base | kw))


def _store(tmp_path, name):
    return open_storage(StorageSpec(uri=str(tmp_path / name)))


def test_o1_pruner_training_raises_short_and_lowers_long(tiny_model_dir, tmp_path):
    spec = _spec(epochs=3)
    model, tok, units = _setup(tiny_model_dir, spec)
    result = tr.train(model, tok, units, spec, _store(tmp_path, "a"))
    assert result.steps == 6 and len(result.history) == 6
    with torch.no_grad():
        s, n = tr._forward(model, units, tok.pad_token_id, torch.device("cpu"))
    mean = (s / n).tolist()
    # positive-advantage (short) samples gained log-prob vs the reference, negative ones lost it
    for u, m in zip(units, mean):
        assert (m > u.ref[0]) == (u.advantage > 0)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_model_dir, tmp_path):
    spec = _spec()
    model, tok, units = _setup(tiny_model_dir, spec)
    tr.train(model, tok, units, spec, _store(tmp_path, "full"))
    expected = tr.trainable_state(model)

    store = _store(tmp_path, "interrupted")
    model, tok, units = _setup(tiny_model_dir, spec)
    first = tr.train(model, tok, units, spec, store, max_steps=3)  # "killed" after step 3
    assert first.steps == 3 and tr.latest_checkpoint(store).endswith("step-00000002")

    model, tok, units = _setup(tiny_model_dir, spec)  # a fresh process
    second = tr.train(model, tok, units, spec, store)
    assert second.resumed_from.endswith("step-00000002") and second.steps == 4
    got = tr.trainable_state(model)
    assert got.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-5, atol=1e-6)


def test_half_written_checkpoint_is_never_picked(tiny_model_dir, tmp_path):
    spec = _spec(epochs=1)
    store = _store(tmp_path, "c")
    model, tok, units = _setup(tiny_model_dir, spec)
    tr.train(model, tok, units, spec, store, max_steps=2)
    good = tr.latest_checkpoint(store)
    # a newer checkpoint whose upload died before its completion marker
    store.write_bytes("train/checkpoints/step-00000009/trainable.safetensors", b"partial")
    assert tr.latest_checkpoint(store) == good


def test_length_bucketing_cuts_padding_without_changing_the_step(tiny_model_dir):
    spec = _spec()
    _, _, units = _setup(tiny_model_dir, spec)
    idx = list(range(len(units)))
    naive = [idx[i : i + 2] for i in range(0, len(idx), 2)]
    bucketed = tr.bucket_micro(idx, units, 2)
    assert sorted(i for g in bucketed for i in g) == idx
    assert tr.padding_waste(bucketed, units) < tr.padding_waste(naive, units)


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_baselines_train(tiny_model_dir, tmp_path, method):
    spec = _spec(epochs=1, method=method)
    ex = _examples()
    if method == "dpo":
        ex = [{"problem_id": a["problem_id"], "chosen": a, "rejected": b} for a, b in zip(ex[0::2], ex[1::2])]
    else:
        ex = [e for e in ex if e["correct"]]
    model, tok, units = _setup(tiny_model_dir, spec, method=method, examples=ex)
    result = tr.train(model, tok, units, spec, _store(tmp_path, method), method=method)
    assert result.steps == 1 and result.history[0]["loss"] > 0


def test_freeze_first_layers(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    spec = TrainingSpec(trainable={"mode": "freeze-first", "freezeFirstN": 1})
    tr.apply_trainable(model, spec)
    layers = model.get_decoder().layers
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    with pytest.raises(ValueError, match="freezeFirstN"):
        tr.apply_trainable(model, TrainingSpec(trainable={"mode": "freeze-first", "freezeFirstN": 99}))
