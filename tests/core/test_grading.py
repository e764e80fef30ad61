"""Answer extraction and grading: the default rules (only a boxed answer of a sample that was not
cut off counts; integers exactly), the looser modes a dataset can choose, edge cases, malformed
input, thread safety; and that sampling grades with its dataset's rules, resumed samples too."""

from __future__ import annotations

import threading
import time

import pytest

from o1pruner.grading import Grade, extract_answer, find_boxed, grade, is_correct, is_truncated, parse_number
from o1pruner.spec import GradingSpec

#: the looser mode a dataset whose model does not box its answers chooses
UNBOXED = GradingSpec(require_boxed=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # boxed: first wins, nested braces, \fbox, unbraced form
        (r"First \boxed{3} then \boxed{4}", "3"),
        (r"so \boxed{\frac{1}{2}} and later \boxed{7}", r"\frac{1}{2}"),
        (r"\boxed{\left\{1, 2\right\}}", r"\left\{1, 2\right\}"),
        (r"\boxed{a{b{c}}d} tail", "a{b{c}}d"),
        (r"\fbox{12}", "12"),
        (r"The result is \boxed 5 apples", "5"),
        (r"$\boxed{-7}$.", "-7"),
        # malformed boxes are skipped, then the fallbacks apply
        (r"\boxed{unclosed 5", "5"),
        (r"\boxed{} then \boxed{8}", "8"),
        (r"\boxedx 3", "3"),
        # "the answer is" / "final answer:" (case-insensitive, last occurrence)
        ("The answer is 42.", "42"),
        ("the answer is 1. No wait, THE ANSWER IS 2.", "2"),
        ("Final Answer: $\\frac{3}{4}$", "\\frac{3}{4}"),
        ("final answer: **1,000 dollars**.", "1,000"),
        ("The final answer is 3.5.", "3.5"),
        ("The answer is that Tom has 5 apples.", "5"),
        ("So the answer is x = 12", "12"),
        ("the answer is: 12\nthen 14 more", "12"),
        # last number
        ("I got -7 then 2.5", "2.5"),
        ("Total: 1,234,567 items", "1234567"),
        ("a ratio of 3/4", "3/4"),
        ("it is -0.25 degrees", "-0.25"),
        ("x = 3-4", "4"),  # subtraction, not a negative number
        ("v1.2 has .5 of it", ".5"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "no numbers here", None, 42, b"bytes", ["list"], r"\boxed{", "{{{{}"])
def test_extract_answer_nothing(text):
    assert extract_answer(text) is None


def test_find_boxed_escaped_braces_and_non_strings():
    assert find_boxed(r"\boxed{\{1\}}") == r"\{1\}"
    assert find_boxed(None) is None
    assert find_boxed(r"\boxed{") is None


@pytest.mark.parametrize(
    ("output", "gold"),
    [
        (r"\boxed{42}", "42"),
        (r"\boxed{1,000}", "1000"),
        (r"\boxed{0.5}", r"\frac{1}{2}"),
        (r"\boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{\dfrac{3}{4}}", "0.75"),
        (r"\boxed{\$5}", "5"),
        (r"\boxed{50\%}", "50"),
        (r"\boxed{-3}", "-3"),
        (r"\boxed{x^2+1}", "1+x^2"),
        (r"\boxed{\sqrt{2}}", r"\frac{2}{\sqrt{2}}"),
        (r"\boxed{(1,2)}", r"\left(1,2\right)"),
        (r"\boxed{2^{10}}", "1024"),
        (r"\boxed{5\,000}", "5000"),
        (r"\boxed{x = 5}", "5"),
        (r"\boxed{5 \text{ apples}}", "5"),
        (r"\boxed{\text{(B)}}", "B"),
        (r"\boxed{0.3333333}", "1/3"),  # within the default tolerance
        ("blah \\boxed{7}", "The answer is \\boxed{7}"),  # gold given as a boxed solution
    ],
)
def test_correct(output, gold):
    g = grade(output, gold)
    assert g.correct, g
    assert is_correct(output, gold)
    assert is_correct(output, gold, UNBOXED)  # a box is graded the same way in the looser mode


@pytest.mark.parametrize(
    ("output", "gold"),
    [("The answer is 1000.", "1,000"), ("so 1/2", "0.5"), ("The answer is $5.", "5"), ("The answer is 5 dollars.", "5")],
)
def test_answers_without_a_box_are_wrong_by_default_and_graded_when_the_dataset_allows_them(output, gold):
    assert grade(output, gold) == Grade(False, None, "no \\boxed{} answer")
    assert is_correct(output, gold, UNBOXED)


@pytest.mark.parametrize(
    ("output", "gold"),
    [
        (r"\boxed{3}", "-3"),
        (r"\boxed{41}", "42"),
        (r"\boxed{0.33}", "1/3"),
        (r"\boxed{x^2}", "x^3"),
        ("no answer at all", "5"),
        (r"First \boxed{3}, corrected: \boxed{4}", "4"),  # the FIRST box counts
        (r"\boxed{5}", ""),
        (r"\boxed{5}", None),
        (r"\boxed{\frac{1}{3}}", "0.333"),
    ],
)
def test_incorrect(output, gold):
    assert not is_correct(output, gold)


def test_tolerance_is_configurable():
    assert not is_correct(r"\boxed{3.14}", "3.14159")
    assert is_correct(r"\boxed{3.14}", "3.14159", GradingSpec(numeric_tolerance=1e-3))


@pytest.mark.parametrize(
    ("output", "gold"),
    [
        (r"\boxed{1000001}", "1000000"),  # within the relative tolerance: matched before issue 10
        (r"\boxed{12345678901234567}", "12345678901234568"),  # beyond float precision
        (r"\boxed{1000000.0000001}", "1000000"),
        (r"\boxed{2.0000001}", "2"),
        (r"\boxed{\frac{2000001}{2}}", "1,000,000"),
    ],
)
def test_integer_gold_answers_compare_exactly(output, gold):
    g = grade(output, gold)
    assert (g.correct, g.reason) == (False, "mismatch"), g
    assert is_correct(output, gold, GradingSpec(exact_integers=False))  # the old, looser mode


@pytest.mark.parametrize(
    ("output", "gold"),
    [(r"\boxed{1000000}", "1,000,000"), (r"\boxed{1,000,000.0}", "1000000"), (r"\boxed{\frac{2000000}{2}}", "1000000"),
     (r"\boxed{\$5}", "5 dollars"), (r"\boxed{10^6}", "1000000"), (r"\boxed{12345678901234567}", "12345678901234567")],
)
def test_integer_gold_answers_accept_the_same_value_in_another_form(output, gold):
    assert is_correct(output, gold), grade(output, gold)


def test_a_sample_cut_off_at_max_tokens_is_wrong_unless_the_dataset_allows_it():
    loop = r"The answer is 6. \boxed{6} The answer is 6. \boxed{6} The answer"
    g = grade(loop, "6", truncated=True)
    assert g == Grade(False, "6", "truncated at maxTokens")
    assert is_correct(loop, "6")  # the same text, finished
    assert is_correct(loop, "6", GradingSpec(truncated_is_incorrect=False), truncated=True)
    # the last number of a truncated loop (how the local run scored chance matches) counts nowhere
    assert not is_correct("The answer is 6. #### 6 The answer is 6", "6", UNBOXED, truncated=True)


@pytest.mark.parametrize(
    ("finish_reason", "tokens", "max_tokens", "expected"),
    [("length", 3, 160, True), ("stop", 160, 160, False), (None, 160, 160, True), (None, 12, 160, False),
     (None, 12, None, False), ("abort", 160, 160, False)],
)
def test_is_truncated(finish_reason, tokens, max_tokens, expected):
    assert is_truncated(finish_reason, tokens, max_tokens) is expected


def test_grade_reports_extraction_and_reason():
    assert grade("nothing", "1", UNBOXED) == Grade(False, None, "no answer found")
    assert grade("nothing", "1") == Grade(False, None, "no \\boxed{} answer")
    g = grade(r"\boxed{12}", "12")
    assert (g.correct, g.extracted, g.reason) == (True, "12", "exact integer match")
    g = grade(r"\boxed{0.5}", "1/2")
    assert (g.correct, g.reason) == (True, "numeric match")
    g = grade(r"\boxed{x+1}", "1+x")
    assert g.correct and g.reason == "math-verify"
    assert grade(r"\boxed{7}", "8").reason == "mismatch"


@pytest.mark.parametrize(
    "output",
    [
        r"\boxed{\frac{1}{}",
        r"\boxed{\frac{\frac{\frac{}}}",
        r"\boxed{\left( 1, 2 \right]}",
        r"\boxed{\sqrt[}{2}}",
        r"\boxed{$$$}",
        r"\boxed{\begin{matrix} 1 \end{pmatrix}}",
        r"\boxed{)(}",
        "\x00\x01\ufffd" * 100,
        "∞ ≠ ∑",
        r"\boxed{" + "x" * 5000 + "}",
    ],
)
def test_malformed_never_raises(output):
    g = grade(output, "5")
    assert isinstance(g, Grade) and not g.correct


@pytest.mark.parametrize(
    ("output", "gold", "expected"),
    [
        (r"\boxed{9^{9^{9}}}", "5", False),
        (r"\boxed{10!!!!}", "5", False),
        (r"\boxed{2^{10^{10}}}", "5", False),
        (r"\boxed{\prod_{i=1}^{10^{7}} i}", "5", False),
        (r"\boxed{9^{9^{9}}}", "9^{9^{9}}", True),  # compared as strings, never evaluated
    ],
)
def test_explosive_expressions_are_not_evaluated(output, gold, expected):
    start = time.monotonic()
    assert is_correct(output, gold) is expected
    assert time.monotonic() - start < 5


def test_huge_input_is_fast_and_safe():
    text = "x" * 3_000_000 + " so 3 " + r"\boxed{" + "{" * 100_000
    start = time.monotonic()
    g = grade(text, "3", UNBOXED)
    assert g.correct and g.extracted == "3"
    assert time.monotonic() - start < 5


def test_no_timeout_warning_from_math_verify(caplog):
    with caplog.at_level("WARNING"):
        assert is_correct(r"\boxed{x+2}", "2+x")
    assert not [r for r in caplog.records if "Timeout" in r.getMessage()]


@pytest.mark.parametrize(
    "text",
    [
        r"\boxed{" * 200_000 + " 4",  # many unclosed boxes: bounded work, not quadratic
        "the answer is " + "." * 500_000 + "x 4",
        "the answer is " * 100_000 + "4",
        "1" * 1_000_000 + " 4",
        "-" * 500_000 + "4",
    ],
)
def test_adversarial_input_is_bounded(text):
    for options in (None, UNBOXED):
        start = time.monotonic()
        g = grade(text, "4", options)
        assert isinstance(g, Grade)
        assert time.monotonic() - start < 5


def test_grading_in_worker_threads():
    """math-verify's signal timeouts fail outside the main thread; ours must not."""
    cases = [(r"\boxed{x+1}", "1+x", True), (r"\boxed{\frac{2}{4}}", "0.5", True), (r"\boxed{7}", "8", False)] * 4
    results: list[bool | None] = [None] * len(cases)

    def work(i: int) -> None:
        out, gold, _ = cases[i]
        results[i] = is_correct(out, gold)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [expected for _, _, expected in cases]


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,000", 1000.0), ("-2.5", -2.5), ("3/4", 0.75), (r"\frac{3}{4}", 0.75), (r"-\dfrac{1}{2}", -0.5),
     ("$5", 5.0), (r"\$5", 5.0), ("5 dollars", 5.0), (r"50\%", 50.0), (r"7\text{ cm}", 7.0),
     ("x+1", None), ("1/0", None), ("", None)],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


# --------------------------------------------------------------------------- sampling and evaluation


class _Scripted:
    """A sampler whose answer to each problem is scripted: ``(text, finish_reason)`` or an exception."""

    name = "scripted"

    def __init__(self, script):
        self.script = script
        self.asked: list[str] = []

    def generate(self, prompts, params):
        from o1pruner.sampling.base import Completion

        for key, _ in prompts:
            self.asked.append(key)
            out = self.script(key)
            if isinstance(out, Exception):
                yield key, out
            else:
                text, finish = out
                yield key, [Completion(text=text, tokens=params.max_tokens if finish == "length" else 5,
                                       finish_reason=finish)] * params.n

    def close(self):
        pass


def _problems(n=4):
    from o1pruner.data import generate_arithmetic

    return generate_arithmetic(n, seed=3)


def test_sampling_grades_with_the_datasets_rules_and_knows_which_samples_hit_the_cap(tmp_path):
    from o1pruner.sampling.base import GenerationParams
    from o1pruner.sampling.collect import sample_problems
    from o1pruner.spec import PromptSpec
    from o1pruner.storage import LocalStorage

    problems = _problems()
    gold = {p.id: p.answer for p in problems}
    cut, unboxed = problems[0].id, problems[1].id

    def script(key):
        if key == cut:
            return f"\\boxed{{{gold[key]}}} The answer is {gold[key]}. The answer", "length"
        if key == unboxed:
            return f"so the answer is {gold[key]}.", "stop"
        return f"\\boxed{{{gold[key]}}}", "stop"

    params = GenerationParams(n=2, temperature=0.7, top_p=1.0, max_tokens=32, seed=0)
    store = LocalStorage(tmp_path)
    out = sample_problems(_Scripted(script), problems, PromptSpec(), params, store=store, prefix="ref", dataset="d")
    by_id = {r["problem_id"]: r for r in out.records}
    assert (by_id[cut]["correct"], by_id[cut]["truncated"], by_id[cut]["grade_reason"]) == (
        False, True, "truncated at maxTokens")
    assert (by_id[unboxed]["correct"], by_id[unboxed]["extracted"]) == (False, None)
    assert all(by_id[p.id]["correct"] for p in problems[2:])

    # a rerun under looser rules regrades the resumed samples: one grading, never two mixed
    loose = GradingSpec(require_boxed=False, truncated_is_incorrect=False)
    never = _Scripted(lambda key: AssertionError("resumed problems are not resampled"))
    again = sample_problems(never, problems, PromptSpec(), params, store=store, prefix="ref", dataset="d", grading=loose)
    assert never.asked == [] and again.resumed_problems == len(problems)
    assert all(r["correct"] for r in again.records)


def _evaluate(store, sampler, problems, label):
    from o1pruner.evaluation import evaluate_model
    from o1pruner.spec import EvaluationSpec, PromptSpec

    return evaluate_model(sampler, {"held-out": problems}, PromptSpec(), EvaluationSpec(max_tokens=32), store, label)


def test_an_evaluation_missing_problems_fails_naming_them_and_a_rerun_fills_only_the_gaps(tmp_path):
    from o1pruner.evaluation import IncompleteEvaluation, compare
    from o1pruner.storage import LocalStorage

    problems = _problems()
    gold = {p.id: p.answer for p in problems}
    dead = problems[2].id
    store = LocalStorage(tmp_path)
    ok = lambda key: (f"\\boxed{{{gold[key]}}}", "stop")  # noqa: E731
    base = _evaluate(store, _Scripted(ok), problems, "base")
    flaky = _Scripted(lambda key: ConnectionError("sampler pod gone") if key == dead else ok(key))
    with pytest.raises(IncompleteEvaluation, match=dead) as err:
        _evaluate(store, flaky, problems, "pruned")
    assert err.value.missing == {"held-out": [dead]}
    assert flaky.asked.count(dead) == 2  # the failed request was retried once more before giving up
    partial = store.read_json("eval/pruned/summary.json")["held-out"]
    assert partial["missing_problems"] == [dead] and partial["scored_problems"] == len(problems) - 1

    rerun = _Scripted(ok)
    pruned = _evaluate(store, rerun, problems, "pruned")
    assert rerun.asked == [dead]  # only the gap is sampled again
    assert compare(base, pruned)["datasets"]["held-out"]["prunedAccuracy"] == 1.0


def test_compare_refuses_evaluations_of_different_problems_and_names_them(tmp_path):
    from o1pruner.evaluation import IncomparableEvaluations, compare
    from o1pruner.storage import LocalStorage

    problems = _problems()
    gold = {p.id: p.answer for p in problems}
    store = LocalStorage(tmp_path)
    ok = lambda key: (f"\\boxed{{{gold[key]}}}", "stop")  # noqa: E731
    base = _evaluate(store, _Scripted(ok), problems, "base")
    fewer = _evaluate(store, _Scripted(ok), problems[:3], "pruned")  # e.g. a dataset limit changed
    with pytest.raises(IncomparableEvaluations, match="scored 4 problems and pruned 3"):
        compare(base, fewer)
    missing = {**base["held-out"], "missing_problems": [problems[1].id]}
    with pytest.raises(IncomparableEvaluations, match=f"pruned is missing 1 problems \\({problems[1].id}\\)"):
        compare(base, {"held-out": missing})
    with pytest.raises(IncomparableEvaluations, match="no evaluation of held-out"):
        compare(base, {})


def test_report_refuses_outputs_of_different_problems():
    from o1pruner.evaluation import IncomparableEvaluations
    from o1pruner.report import build_report

    rec = lambda pid: {"dataset": "d", "problem_id": pid, "length": 3, "correct": True, "difficulty": 1}  # noqa: E731
    build_report("j", {"datasets": {}, "average": {}}, [rec("a"), rec("b")], [rec("b"), rec("a")])
    with pytest.raises(IncomparableEvaluations, match="pruned has no output for 1 problems \\(d/b\\)"):
        build_report("j", {"datasets": {}, "average": {}}, [rec("a"), rec("b")], [rec("a")])


def test_grading_options_are_in_the_spec_and_the_crd_with_strict_defaults():
    from o1pruner.crd import build_crd
    from o1pruner.spec import SpecError, parse_spec

    spec = {"model": {"source": "org/m"}, "storage": {"uri": "/tmp/x"},
            "datasets": {"train": {"name": "t", "source": "builtin:arithmetic"},
                         "eval": [{"name": "e", "source": "builtin:arithmetic",
                                   "grading": {"requireBoxed": False, "numericTolerance": 1e-3}}]}}
    parsed = parse_spec(spec)
    assert parsed.datasets.train.grading == GradingSpec()
    assert GradingSpec().model_dump() == {"require_boxed": True, "truncated_is_incorrect": True,
                                          "exact_integers": True, "numeric_tolerance": 1e-6}
    assert parsed.datasets.eval[0].grading == GradingSpec(require_boxed=False, numeric_tolerance=1e-3)
    spec["datasets"]["eval"][0]["grading"] = {"requireBox": False}
    with pytest.raises(SpecError, match=r"spec.datasets.eval\[0\].grading.requireBox: unknown field"):
        parse_spec(spec)

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for ds in (schema["properties"]["datasets"]["properties"]["train"],
               schema["properties"]["datasets"]["properties"]["eval"]["items"]):
        props = ds["properties"]["grading"]["properties"]
        assert {k: v.get("default") for k, v in props.items()} == {
            "requireBoxed": True, "truncatedIsIncorrect": True, "exactIntegers": True, "numericTolerance": 1e-6}
        assert all(v.get("description") for v in props.values())
