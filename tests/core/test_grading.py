"""Answer extraction and grading: edge cases, malformed input, thread safety."""

from __future__ import annotations

import threading
import time

import pytest

from o1pruner.grading import Grade, extract_answer, find_boxed, grade, is_correct, parse_number


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
        ("The answer is 1000.", "1,000"),
        (r"\boxed{0.5}", r"\frac{1}{2}"),
        (r"\boxed{\frac{1}{2}}", "0.5"),
        ("so 1/2", "0.5"),
        (r"\boxed{\dfrac{3}{4}}", "0.75"),
        (r"\boxed{\$5}", "5"),
        ("The answer is $5.", "5"),
        ("The answer is 5 dollars.", "5"),
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
    assert is_correct(r"\boxed{3.14}", "3.14159", tolerance=1e-3)


def test_grade_reports_extraction_and_reason():
    assert grade("nothing", "1") == Grade(False, None, "no answer found")
    g = grade(r"\boxed{12}", "12")
    assert (g.correct, g.extracted, g.reason) == (True, "12", "numeric match")
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
    g = grade(text, "3")
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
    start = time.monotonic()
    g = grade(text, "4")
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
