"""The long-thought testbed's task, traces, tokenizer and recipe (pure, fast)."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace

import pytest

from o1pruner.data import generate_longthought, load_dataset
from o1pruner.grading import grade
from o1pruner.spec import DatasetSpec
from o1pruner.testbed.build import TESTBED_RECIPES, Recipe, batches, label_tokens, length_bucketed, lr_at
from o1pruner.testbed.traces import (
    ERROR_CAUSES, TaskSpec, TraceStyle, error_cause, make_problems, minimal_length, minimal_trace, redundancy_profile,
    sample_trace, trace_answer,
)

TASK = TaskSpec()
PROBLEMS = make_problems(300, 7)


def test_problems_stay_in_range_and_cycle_difficulty():
    for i, p in enumerate(PROBLEMS):
        assert len(p.ops) == TASK.min_ops + i % (TASK.max_ops - TASK.min_ops + 1)
        assert 1 <= p.start <= TASK.max_value
        assert all(0 <= v <= TASK.max_value for v in p.values)
        assert all(1 <= b <= TASK.max_operand for _, b in p.ops)
    assert make_problems(50, 7) == PROBLEMS[:50]
    assert make_problems(50, 8) != PROBLEMS[:50]


def test_minimal_trace_is_correct_and_l_min_counts_eos():
    for p in PROBLEMS:
        text = minimal_trace(p)
        assert trace_answer(text) == p.answer
        assert minimal_length(p) == len(text.split()) + 1
        assert grade(text, str(p.answer)).correct


def test_without_errors_every_trace_is_correct_and_at_least_minimal():
    style = replace(TraceStyle(), error_rate=0.0, p_guess=0.0)
    rng = random.Random(0)
    for p in PROBLEMS:
        text = sample_trace(p, rng, style)
        assert trace_answer(text) == p.answer
        assert len(text.split()) + 1 >= minimal_length(p)


def test_uncaught_errors_reach_the_answer_and_checks_catch_them():
    rng = random.Random(1)
    blind = TraceStyle(p_restate=0, p_check=0, p_recompute=0, p_again=0, p_guess=0, error_rate=1.0)
    # every step goes wrong and nothing checks: right only where later errors cancel earlier ones
    blind_texts = [sample_trace(p, rng, blind) for p in PROBLEMS]
    assert statistics.mean(trace_answer(t) == p.answer for t, p in zip(blind_texts, PROBLEMS)) < 0.15
    one_step = [replace(p, ops=p.ops[:1], values=p.values[:1]) for p in PROBLEMS]
    assert all(trace_answer(sample_trace(p, rng, blind)) != p.answer for p in one_step)
    for useful in ("p_check", "p_recompute", "p_again"):
        style = replace(blind, **{useful: 1.0})
        texts = [sample_trace(p, rng, style) for p in PROBLEMS]
        assert all(trace_answer(t) == p.answer for t, p in zip(texts, PROBLEMS)), useful
    caught = sample_trace(PROBLEMS[0], rng, replace(blind, p_check=1.0))
    assert " wrong ; fix " in caught


def test_redundancy_profile_counts_each_kind_once_per_occurrence():
    assert redundancy_profile(minimal_trace(PROBLEMS[0])) == dict.fromkeys(
        ("restate", "check", "recompute", "again", "guess", "fix"), 0)
    rng = random.Random(3)
    p = PROBLEMS[0]
    every = TraceStyle(p_restate=1, p_check=1, p_recompute=1, p_again=1, p_guess=0, error_rate=0)
    prof = redundancy_profile(sample_trace(p, rng, every))
    n = len(p.ops)
    # restated once; every step of the first solve checked and recomputed; one plain second solve
    assert prof == {"restate": 1, "check": n, "recompute": n, "again": 1, "guess": 0, "fix": 0}
    guess = redundancy_profile(sample_trace(p, rng, replace(every, p_guess=1.0)))
    assert guess["guess"] == 1 and guess["check"] == 0


def test_guess_is_a_short_cut_shorter_than_minimal_and_usually_wrong():
    rng = random.Random(2)
    style = replace(TraceStyle(), p_guess=1.0)
    texts = [sample_trace(p, rng, style) for p in PROBLEMS]
    assert all(t.startswith("guess ") for t in texts)
    assert all(len(t.split()) + 1 < minimal_length(p) for t, p in zip(texts, PROBLEMS))
    accuracy = statistics.mean(trace_answer(t) == p.answer for t, p in zip(texts, PROBLEMS))
    assert accuracy < 0.2
    assert all((trace_answer(t) == p.answer) == (p.answer % 10 == 0) for t, p in zip(texts, PROBLEMS))


def test_reference_style_is_long_and_varies_within_a_problem():
    rng = random.Random(3)
    p = PROBLEMS[2]
    lengths = [len(sample_trace(p, rng).split()) + 1 for _ in range(200)]
    assert statistics.mean(lengths) >= 2.5 * minimal_length(p)
    assert max(lengths) - min(lengths) >= 2 * minimal_length(p)


def test_tokenizer_round_trips_and_counts_one_token_per_word():
    from o1pruner.testbed.vocab import build_tokenizer

    tok = build_tokenizer(TASK)
    rng = random.Random(4)
    error_prone = replace(TraceStyle(), error_rate=0.5)  # wrong values may leave [0, max_value]
    for p in PROBLEMS:
        text = sample_trace(p, rng, error_prone)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text.split())
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    prompt = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": p.text}],
                                     tokenize=False, add_generation_prompt=True)
    assert prompt == f"<s><|user|> {p.text} <|assistant|>"


def test_recipe_digest_names_every_setting():
    base = Recipe()
    assert base.digest() == Recipe().digest()
    variants = [replace(base, steps=base.steps + 1), replace(base, seed=base.seed + 1),
                replace(base, style=replace(base.style, p_check=0.5)),
                replace(base, task=replace(base.task, max_operand=9)),
                replace(base, threads=1), replace(base, length_buckets=1)]
    assert len({base.digest(), *(v.digest() for v in variants)}) == 1 + len(variants)
    assert "longthought-arith" in TESTBED_RECIPES


def test_length_buckets_keep_every_example_and_cut_padding():
    rng = random.Random(3)
    examples = [([0] * rng.randint(20, 190), []) for _ in range(256)]
    buckets = length_bucketed(examples, 32, random.Random(5))
    assert sorted(map(id, (e for b in buckets for e in b))) == sorted(map(id, examples))
    assert [len(b) for b in buckets] == [32] * 8
    assert buckets != length_bucketed(examples, 32, random.Random(6))  # the order is shuffled

    def padding(batches_):
        cells = sum(len(b) * max(len(e[0]) for e in b) for b in batches_)
        return 1 - sum(len(e[0]) for e in examples) / cells

    unsorted = [examples[i: i + 32] for i in range(0, 256, 32)]
    assert padding(buckets) < 0.1 < 0.3 < padding(unsorted)


def test_build_batches_are_fresh_bucketed_and_as_many_as_steps():
    from o1pruner.testbed.vocab import build_tokenizer

    recipe = replace(Recipe(), steps=11, batch_size=8, length_buckets=4)
    tok = build_tokenizer(recipe.task, recipe.style)
    got = list(batches(random.Random(recipe.seed), tok, recipe))
    assert [len(rows) for rows, _ in got] == [8] * 11
    ids_seen = [tuple(ids) for rows, _ in got for ids, _ in rows]
    assert len(set(ids_seen)) > 0.9 * len(ids_seen)  # fresh traces, not one pool reused
    for start in (0, 4):  # a group's batches are slices of its rows sorted by length
        group = got[start: start + 4]
        spans = sorted((min(len(ids) for ids, _ in rows), max(len(ids) for ids, _ in rows)) for rows, _ in group)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
        # every batch of a group divides by the group's mean loss tokens, so each token weighs the same
        assert {per for _, per in group} == {sum(label_tokens(rows) for rows, _ in group) / 4}
    assert got[-1][1] == sum(label_tokens(rows) for rows, _ in got[8:]) / 3  # the last, shorter group
    for ids, mask in got[0][0]:  # the prompt masked out, the trace and EOS kept
        assert len(ids) == len(mask) and ids[-1] == tok.eos_token_id and mask[0] == 0 and mask[-1] == 1
    assert got == list(batches(random.Random(recipe.seed), tok, recipe))  # deterministic


def test_build_loss_is_the_summed_token_loss_over_the_given_divisor():
    """The build passes its divisor to the model (``num_items_in_batch``): the loss is the sum of
    the batch's token losses over it, not the batch's own token mean."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    ids = torch.randint(0, 16, (2, 6))
    labels = ids.clone()
    labels[:, :2] = -100
    mean = model(input_ids=ids, labels=labels).loss
    n = int((labels[:, 1:] != -100).sum())
    summed = model(input_ids=ids, labels=labels, num_items_in_batch=torch.tensor(3.0 * n)).loss
    assert summed.item() == pytest.approx(mean.item() / 3, rel=1e-5)


def test_learning_rate_warms_up_then_decays():
    r = Recipe()
    lrs = [lr_at(s, r) for s in range(r.steps)]
    assert lrs[0] < lrs[r.warmup_steps - 1] == pytest.approx(r.learning_rate)
    assert lrs[-1] == pytest.approx(0.1 * r.learning_rate, rel=0.05)
    assert all(a >= b for a, b in zip(lrs[r.warmup_steps:], lrs[r.warmup_steps + 1:]))


def test_builtin_longthought_dataset_carries_l_min():
    ds = DatasetSpec.model_validate({"name": "lt", "source": "builtin:longthought",
                                      "generator": {"count": 9, "seed": 5, "minSteps": 2, "maxSteps": 4}})
    problems = load_dataset(ds).problems
    assert [p.difficulty for p in problems] == [2, 3, 4] * 3
    assert problems == generate_longthought(9, 5, 2, 4, name="lt")
    chains = make_problems(9, 5)
    for p, chain in zip(problems, chains):
        assert p.problem == chain.text and p.answer == str(chain.answer)
        assert p.meta["l_min"] == minimal_length(chain)


def test_a_build_records_its_cpu_and_weights_hash_and_builds_compare_by_them(tmp_path):
    """Builds differ between kinds of CPU (an Intel Xeon and an AMD EPYC built different
    weights from one recipe), so a build names itself: CPU and weights SHA-256 in testbed.json,
    and reports carry that identity."""
    from o1pruner.testbed.build import build_identity, ensure_built, file_sha256, same_build

    built = ensure_built("longthought-smoke", tmp_path, progress=False)
    ident = build_identity(built)
    assert ident["digest"] == TESTBED_RECIPES["longthought-smoke"].digest()
    assert ident["weights_sha256"] == file_sha256(built / "model.safetensors") and ident["cpu"]
    assert build_identity(tmp_path) is None  # not a testbed build

    older = {k: v for k, v in ident.items() if k not in ("weights_sha256", "cpu")}  # before builds hashed
    assert same_build(ident, ident) and same_build(ident, older)
    assert not same_build(ident, dict(ident, weights_sha256="0" * 64))
    assert not same_build(older, dict(older, final_loss=older["final_loss"] + 0.0087))
    assert not same_build({}, {})  # nothing recorded names nothing


def test_error_cause_reads_why_an_answer_is_wrong_off_its_first_solve():
    """The causes the redundancy oracle counts, on answers the reference model really wrote
    (problem ``5 #1 + 1 #2 - 1``, answer 5)."""
    ops = [("+", 1), ("-", 1)]
    assert error_cause(ops, 5, "#1 5 + 1 = 6 ; check 6 - 1 = 5 ok ; #2 6 - 5 = 1 ; answer \\boxed{ 1 }") == "operand"
    assert error_cause(ops, 5, "#1 5 + 1 = 7 ; #2 7 - 1 = 6 ; answer \\boxed{ 6 }") == "arithmetic"
    second_solve = "#1 5 + 1 = 6 ; #2 6 - 1 = 5 ; again #1 5 + 1 = 6 ; #2 6 - 2 = 4 ; same ; answer \\boxed{ 4 }"
    assert error_cause(ops, 5, second_solve) == "after-first-solve"
    assert error_cause(ops, 5, "guess 5 #1 + 1 #2 - 1 ≈ 10 ; answer \\boxed{ 10 }") == "other"
    # a recompute of a step counts as part of the first solve (its operand too)
    assert error_cause(ops, 5, "#1 5 + 1 = 6 ; wait #1 5 + 2 = 7 ; #2 7 - 1 = 6 ; answer \\boxed{ 6 }") == "operand"
    assert set(ERROR_CAUSES) == {"operand", "arithmetic", "after-first-solve", "other"}


def test_a_warm_up_recipe_names_its_pretrained_model_and_from_scratch_digests_stay():
    """``init`` (a pretrained embedded model to warm up) is in the digest of a warm-up recipe and
    absent from the from-scratch ones, whose cache names (and the benchmarks' work directories
    named by them) are what they were before warm-ups existed."""
    warm = TESTBED_RECIPES["smollm2-longthought"]
    assert warm.init == "smollm2-135m-instruct"
    assert warm.to_dict()["init"] == "smollm2-135m-instruct" and "shape" not in warm.to_dict()
    assert "init" not in Recipe().to_dict() and "shape" in Recipe().to_dict()
    assert replace(warm, init="other").digest() != warm.digest()
    assert TESTBED_RECIPES["longthought-arith"].digest() == "e31c7d9365b9"


def test_a_warm_up_starts_only_from_a_pretrained_embedded_model():
    from o1pruner.testbed.build import initial_model

    with pytest.raises(ValueError, match="not a pretrained embedded model"):
        initial_model(replace(Recipe(), init="longthought-arith"))


def test_lower_bound_is_the_minimal_trace_in_the_models_own_tokens(smollm2_tokenizer):
    """L_min of a testbed problem: one token per word (+ EOS) for the testbed's tokenizer, which
    is the ``l_min`` the dataset carries; SmolLM2's BPE splits numbers, so its L_min is its own
    token count of the same minimal trace. Problems without a known bound have none."""
    from o1pruner.data import generate_arithmetic, lower_bounds
    from o1pruner.testbed.traces import lower_bound, problem_from_meta
    from o1pruner.testbed.vocab import build_tokenizer

    problems = generate_longthought(12, 5, 2, 4)
    testbed_tok = build_tokenizer(TASK)
    for p, chain in zip(problems, make_problems(12, 5)):
        assert problem_from_meta(p.meta) == chain and problem_from_meta(p.meta).values == chain.values
        assert lower_bound(p.meta) == lower_bound(p.meta, testbed_tok) == p.meta["l_min"]
        smol = lower_bound(p.meta, smollm2_tokenizer)
        assert smol == len(smollm2_tokenizer(minimal_trace(chain), add_special_tokens=False)["input_ids"]) + 1
        assert smol > p.meta["l_min"]  # " 12" is two SmolLM2 tokens
    assert lower_bound({"l_min": 17}) == 17 and lower_bound({}) is None
    assert lower_bounds(generate_arithmetic(4, 1), "unused: no testbed problem, no tokenizer") is None


def test_warm_up_rows_are_the_trace_in_the_pretrained_models_chat_format(smollm2_tokenizer):
    """A warm-up row is the prompt in SmolLM2's chat template (masked), then the trace and
    SmolLM2's end-of-turn token (the loss's tokens): what the pipeline samples and scores."""
    from o1pruner.spec import PromptSpec
    from o1pruner.prompts import build_messages
    from o1pruner.testbed.build import _example

    tok, recipe = smollm2_tokenizer, TESTBED_RECIPES["smollm2-longthought"]
    ids, mask = _example(random.Random(3), tok, recipe)
    start = mask.index(1)
    assert all(mask[start:]) and not any(mask[:start]) and ids[-1] == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    prompt = tok.decode(ids[:start])
    problem = prompt.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    pipeline_prompt = tok.apply_chat_template(build_messages(problem, PromptSpec(system="")), tokenize=False,
                                              add_generation_prompt=True)
    assert prompt == pipeline_prompt  # the bench's and the example's `prompt: {system: ""}`
    trace = tok.decode(ids[start:-1])
    assert trace.endswith("}") and "\\boxed{" in trace and len(ids) - start > len(trace.split())


def test_concise_mode_writes_the_minimal_steps_with_uncaught_errors_and_no_redundancy():
    style = TraceStyle(p_concise=1.0, p_guess=0.0, error_rate=0.0)
    problems = make_problems(60, seed=5)
    rng = random.Random(0)
    assert all(sample_trace(p, rng, style) == minimal_trace(p) for p in problems)
    noisy = replace(style, error_rate=0.3)
    texts = [(p, sample_trace(p, rng, noisy)) for p in problems]
    for p, text in texts:
        assert not any(redundancy_profile(text).values())
        assert len(text.split()) == len(minimal_trace(p).split())  # the same steps, some values wrong
    assert 0 < sum(trace_answer(t) != p.answer for p, t in texts) < len(texts)  # nothing catches an error


def test_concise_mode_is_drawn_at_its_rate_and_leaves_other_recipes_unchanged():
    p_concise, problems = 0.1, make_problems(2000, seed=6)
    rng = random.Random(1)
    texts = [sample_trace(p, rng, TraceStyle(p_concise=p_concise, error_rate=0.0)) for p in problems]
    concise = sum(t == minimal_trace(p) for p, t in zip(problems, texts)) / len(problems)
    assert abs(concise - p_concise) < 0.03  # (a verbose trace equals the minimal one only by chance: rare)
    # Off (the default), no draw is made: the same random stream, the same traces as before the field.
    a, b = random.Random(2), random.Random(2)
    assert [sample_trace(p, a) for p in problems[:50]] == [sample_trace(p, b, TraceStyle(p_concise=0.0))
                                                          for p in problems[:50]]
    assert "p_concise" not in TESTBED_RECIPES["longthought-arith"].to_dict()["style"]
    concise_recipe = TESTBED_RECIPES["longthought-concise"]
    assert concise_recipe.style.p_concise == p_concise
    assert concise_recipe.digest() != TESTBED_RECIPES["longthought-arith"].digest()
    assert replace(concise_recipe, style=TraceStyle()) == TESTBED_RECIPES["longthought-arith"]  # only the mode differs


def test_concise_error_rate_sets_the_concise_modes_errors_alone():
    problems = make_problems(200, seed=9)
    exact = TraceStyle(p_concise=1.0, p_guess=0.0, error_rate=0.3, concise_error_rate=0.0)
    rng = random.Random(4)
    assert all(sample_trace(p, rng, exact) == minimal_trace(p) for p in problems)  # the minimal traces themselves
    verbose = replace(exact, p_concise=0.0)
    fixes = sum(redundancy_profile(sample_trace(p, rng, verbose))["fix"] for p in problems)
    assert fixes > 0  # the verbose mode keeps its own error rate (its checks repair errors)
    # The recipe: only the concise mode's errors differ from longthought-concise, whose digest is kept.
    exact_recipe, concise_recipe = TESTBED_RECIPES["longthought-concise-exact"], TESTBED_RECIPES["longthought-concise"]
    assert exact_recipe.style.concise_error_rate == 0.0 and concise_recipe.style.concise_error_rate is None
    assert replace(exact_recipe, style=concise_recipe.style, seed=concise_recipe.seed) == concise_recipe
    assert "concise_error_rate" not in concise_recipe.to_dict()["style"]
    assert exact_recipe.to_dict()["style"]["concise_error_rate"] == 0.0
    assert exact_recipe.digest() != concise_recipe.digest()


def test_below_about_15_percent_concise_the_restatement_stays_the_likeliest_opening():
    """docs/testbed.md: "Below about 15 % the restatement stays the likeliest opening" (a concise
    trace and a verbose one without a restatement open with the same word, ``#1``)."""
    problems = make_problems(20000, seed=8)

    def opening_shares(p_concise: float) -> tuple[float, float]:
        rng = random.Random(3)
        firsts = [sample_trace(p, rng, TraceStyle(p_concise=p_concise)).split()[0] for p in problems]
        return firsts.count("restate") / len(firsts), firsts.count("#1") / len(firsts)

    restate, step = opening_shares(TESTBED_RECIPES["longthought-concise"].style.p_concise)
    assert restate > step + 0.03
    restate, step = opening_shares(0.17)
    assert restate < step
