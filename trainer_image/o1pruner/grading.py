r"""Final-answer extraction and correctness checking.

:func:`extract_answer` pulls the final answer out of a model output, :func:`is_correct`
compares it with the gold answer and :func:`grade` returns both with a reason. What counts is
set per dataset by :class:`o1pruner.spec.GradingSpec` (``datasets.*.grading``); reference
sampling and evaluation grade with the same rules.

Defaults: only real answers count (the authors' practice)
    * the answer is the FIRST well-formed ``\boxed{...}`` / ``\fbox{...}`` of the output
      (balanced braces; ``\boxed 5`` without braces is accepted too); an output without one is
      wrong (``requireBoxed``);
    * a sample that stopped at ``maxTokens`` (finish reason ``length``) is wrong whatever its
      text: the last number of a loop cut off at the cap is no answer (``truncatedIsIncorrect``);
    * an integer gold answer is compared exactly (``1000001`` is not ``1000000``;
      ``exactIntegers``); other numbers with ``numericTolerance`` (relative and absolute).

Looser modes (``requireBoxed: false``)
    Without a box, the LAST "the answer is ..." / "final answer: ..." phrase (case-insensitive),
    else the last number in the text (``-3``, ``2.5``, ``1,234``, ``3/4``) is graded.

Comparison
    A numeric comparison first (exact for integer gold answers, else with tolerance), which
    accepts ``1,000`` for ``1000``, ``1/2`` for ``0.5`` and strips currency and unit words
    (``$5``, ``5 dollars``); then ``math_verify.verify(parse(gold), parse(pred))`` (the order
    matters: gold first), with the extracted answer wrapped as ``$...$``. Grading never raises:
    any failure counts as incorrect and is reported in :attr:`Grade.reason`.

Difference from the authors' grader
    The O1-Pruner authors also take the first ``\boxed{}`` of an output and count outputs without
    one wrong, but grade with PRM800K's sympy-based grader after Hendrycks' MATH answer
    normalisation (string clean-up of units, ``\text{}``, ``\dfrac``, ...). We use Hugging
    Face's math-verify, which is better maintained and handles more LaTeX forms (sets,
    intervals, equations, units). Accuracy numbers are therefore comparable in spirit, not
    digit for digit.

Thread safety
    math-verify guards parsing and comparison with ``signal.alarm`` timeouts, which only work
    in the main thread (elsewhere it raises) and would cancel another SIGALRM user's pending
    alarm (e.g. pytest-timeout). We call it with ``parsing_timeout=None`` / ``timeout_seconds=None``
    and prevent the expensive cases ourselves: answers are capped in length, and an expression
    whose evaluation could explode (power towers, huge exponents, factorials of large or
    nested arguments) is not handed to sympy's comparison; it is compared as a normalised string
    instead. Grading is therefore safe to call from worker threads.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from o1pruner.spec import GradingSpec

__all__ = [
    "DEFAULT_GRADING", "Grade", "extract_answer", "find_boxed", "grade", "is_correct", "is_truncated", "parse_number",
]

#: The default rules (a dataset without a ``grading`` block).
DEFAULT_GRADING = GradingSpec()

log = logging.getLogger(__name__)


class _DropTimeoutWarning(logging.Filter):
    """math-verify warns once per process that its timeouts are off; we disable them on
    purpose and bound the work ourselves (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())

#: Answers longer than this are not parsed (a final answer is short; this bounds sympy's work).
MAX_ANSWER_CHARS = 300
#: Only the tail of very long outputs is scanned for answer phrases and numbers.
_TAIL_CHARS = 1_000_000
#: A box is searched this far for its closing brace; at most this many boxes are tried.
_MAX_BOX_CHARS = 10_000
_MAX_BOXES = 100
#: Largest exponent / factorial argument handed to sympy's symbolic comparison.
_MAX_EXPONENT = 10_000
_MAX_FACTORIAL = 1_000

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_NUMBER = r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|(?<![\w.])-?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_PHRASE_RE = re.compile(
    r"(?:final\s+answer|the\s+answer|answer\s+is)\s*(?:is|:|=)?\s*:?\s*",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_UNIT_WORDS = re.compile(
    r"^\s*(?P<num>" + _NUMBER + r")\s*(?:%|[A-Za-z][A-Za-z .'-]{0,40})?\s*$"
)


@dataclass(frozen=True)
class Grade:
    """The result of grading one output: correctness, what was extracted and why."""

    correct: bool
    extracted: str | None
    reason: str


# --------------------------------------------------------------------------- extraction


def _braced(text: str, open_idx: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[open_idx] == '{'`` and the index after it.

    Escaped braces (``\\{``, ``\\}``) do not count. ``None`` if the group does not close
    within ``_MAX_BOX_CHARS`` characters.
    """
    depth = 0
    i = open_idx
    n = min(len(text), open_idx + _MAX_BOX_CHARS)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2  # skip the escaped character (\{, \}, \\)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_idx + 1 : i], i + 1
        i += 1
    return None


def find_boxed(text: str) -> str | None:
    r"""The content of the first well-formed, non-empty ``\boxed{}`` / ``\fbox{}`` in ``text``.

    ``\boxed 5`` (no braces) yields ``5``. Unbalanced or empty boxes are skipped.
    """
    if not isinstance(text, str):
        return None
    for tried, match in enumerate(_BOX_RE.finditer(text)):
        if tried >= _MAX_BOXES:
            break
        pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text):
            continue
        if text[pos] == "{":
            group = _braced(text, pos)
            if group is None:
                continue
            content = group[0].strip()
        elif match.end() < pos:  # "\boxed 5": a space, then one token
            token = re.match(r"[^\s$}]+", text[pos:])
            content = token.group(0).strip() if token else ""
        else:
            continue
        if content:
            return content
    return None


def _clean(answer: str) -> str:
    """Trim decoration around an answer phrase: markdown, dollars-as-math, trailing dots."""
    s = answer.strip()
    s = re.sub(r"^(?:\*\*|__)|(?:\*\*|__)$", "", s).strip()
    s = s.strip("*_ ").strip()
    if s.startswith("$") and s.endswith("$") and len(s) > 1 and not s.startswith("\\$"):
        s = s.strip("$").strip()
    s = re.sub(r"[.;,!]+$", "", s).strip()
    return s


def _phrase_answer(text: str) -> str | None:
    """The answer after the last "the answer is" / "final answer:" phrase, if any."""
    last = None
    for last in _PHRASE_RE.finditer(text):
        pass
    if last is None:
        return None
    # up to the end of the line, or a sentence end (". " / "." at the end, not a decimal point)
    line = text[last.end() : last.end() + 2 * MAX_ANSWER_CHARS].split("\n", 1)[0]
    end = re.search(r"\.(?:\s|$)", line)
    phrase = _clean(line[: end.start()] if end else line)
    if not phrase:
        return None
    unit = _UNIT_WORDS.match(phrase.replace("\\$", "").replace("$", ""))
    if unit:
        return unit.group("num").replace(" ", "")
    equation = re.fullmatch(r"[A-Za-z]\s*=\s*(.+)", phrase)
    if equation:
        return equation.group(1).strip()
    if len(_WORD_RE.findall(phrase)) >= 2 and _NUMBER_RE.search(phrase):
        return _last_number(phrase)  # a sentence ("that Tom has 5 apples"): its last number
    return phrase[:MAX_ANSWER_CHARS]


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    if last is None:
        return None
    return last.group(0).replace(",", "").replace(" ", "")


def extract_answer(text: Any) -> str | None:
    r"""The final answer in a model output, or ``None`` if there is none.

    First ``\boxed{}``, else the last "the answer is" / "final answer:" phrase, else the last
    number. Never raises (non-strings and malformed LaTeX give ``None`` or a best effort).
    """
    try:
        if not isinstance(text, str) or not text.strip():
            return None
        boxed = find_boxed(text)
        if boxed is not None:
            return boxed
        tail = text[-_TAIL_CHARS:]
        return _phrase_answer(tail) or _last_number(tail)
    except Exception:  # pragma: no cover - defensive: extraction must never crash a run
        log.debug("answer extraction failed", exc_info=True)
        return None


# --------------------------------------------------------------------------- comparison


def _exact_number(text: str) -> Fraction | None:
    r"""The exact value of a plain number in ``text`` (see :func:`parse_number`), or ``None``."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    if len(s) > MAX_ANSWER_CHARS:
        return None
    s = re.sub(r"\\text\{([^{}]*)\}|\\mathrm\{([^{}]*)\}", lambda m: m.group(1) or m.group(2) or "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\!", "").replace("{,}", ",")
    s = re.sub(r"(?<=\d)(?:\\,|\\ |~)(?=\d{3}\b)", "", s)  # 5\,000 (thin-space thousands)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\%", "%").strip()
    frac = re.fullmatch(r"(-?)\\[dt]?frac\{\s*(-?[\d.]+)\s*\}\{\s*(-?[\d.]+)\s*\}", s)
    if frac:
        s = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}"
    s = re.sub(r"\s*(?:%|percent)$", "", s)
    m = _UNIT_WORDS.match(s)
    if not m:
        return None
    num = m.group("num").replace(",", "").replace(" ", "")
    try:
        if "/" in num:
            a, b = num.split("/")
            return Fraction(a) / Fraction(b)
        return Fraction(num)
    except (ValueError, ZeroDivisionError):
        return None


def parse_number(text: str) -> float | None:
    r"""A plain number in ``text`` (``1,000``, ``-2.5``, ``3/4``, ``\frac{3}{4}``, ``$5``,
    ``5 dollars``, ``50\%``), or ``None`` if it is not just a number."""
    exact = _exact_number(text)
    if exact is None:
        return None
    try:
        value = float(exact)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _numbers_equal(pred: str, gold: str, tolerance: float) -> bool:
    a, b = parse_number(pred), parse_number(gold)
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def _is_explosive(expr: Any) -> bool:
    """Whether sympy evaluation of ``expr`` could take unbounded time or memory."""
    import sympy
    from sympy.functions.combinatorial.factorials import CombinatorialFunction

    if not isinstance(expr, sympy.Basic):
        return False
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow):
            exp = node.exp
            if exp.free_symbols:
                continue
            if not exp.is_Number or abs(exp) > _MAX_EXPONENT:
                return True
        elif isinstance(node, (sympy.Sum, sympy.Product)):
            for limit in node.limits:
                lo, hi = limit[1], limit[2]
                if not (lo.is_Number and hi.is_Number) or abs(hi - lo) > _MAX_EXPONENT:
                    return True
        elif isinstance(node, (CombinatorialFunction, sympy.gamma)):
            for arg in node.args:
                if not arg.free_symbols and (not arg.is_Number or abs(arg) > _MAX_FACTORIAL):
                    return True
    return False


def _as_math(answer: str) -> str:
    return answer if answer.startswith("$") and answer.endswith("$") else f"${answer}$"


def _math_verify_equal(pred: str, gold: str) -> tuple[bool, str]:
    """math-verify comparison without signal timeouts; ``(equal, how)``."""
    from math_verify import parse, verify

    gold_parsed = parse(_as_math(gold), parsing_timeout=None)
    pred_parsed = parse(_as_math(pred), parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False, "math-verify could not parse"
    if any(_is_explosive(x) for x in (*gold_parsed, *pred_parsed)):
        # compare the normalised strings math-verify extracted, never evaluate
        gold_strs = {x for x in gold_parsed if isinstance(x, str)}
        same = any(isinstance(x, str) and x in gold_strs for x in pred_parsed)
        return same, "string match (expression too large to evaluate)"
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None)), "math-verify"


def _gold_answer(gold: str) -> str:
    boxed = find_boxed(gold) if "\\boxed" in gold or "\\fbox" in gold else None
    return (boxed or gold).strip()


def is_truncated(finish_reason: str | None, tokens: int | None = None, max_tokens: int | None = None) -> bool:
    """Whether a sample stopped at the token cap: the backend said ``length``, or (a backend
    that gives no reason) it has ``max_tokens`` tokens."""
    if finish_reason is not None:
        return finish_reason == "length"
    return tokens is not None and max_tokens is not None and tokens >= max_tokens


def _compare(extracted: str, gold_ans: str, options: GradingSpec) -> Grade:
    if len(extracted) > MAX_ANSWER_CHARS:
        return Grade(False, extracted, "answer too long to grade")
    gold_value = _exact_number(gold_ans)
    if options.exact_integers and gold_value is not None and gold_value.denominator == 1:
        pred_value = _exact_number(extracted)
        if pred_value is not None:  # a plain number against an integer: nothing to round
            if pred_value == gold_value:
                return Grade(True, extracted, "exact integer match")
            return Grade(False, extracted, "mismatch")
    elif _numbers_equal(extracted, gold_ans, options.numeric_tolerance):
        return Grade(True, extracted, "numeric match")
    try:
        equal, how = _math_verify_equal(extracted, gold_ans)
    except Exception as exc:  # math-verify / sympy failure: fall through to mismatch
        log.debug("math-verify failed on %r vs %r", extracted, gold_ans, exc_info=True)
        return Grade(False, extracted, f"math-verify error: {type(exc).__name__}")
    if equal:
        return Grade(True, extracted, how)
    return Grade(False, extracted, "mismatch")


def grade(output: Any, gold: Any, options: GradingSpec | None = None, *, truncated: bool = False) -> Grade:
    r"""Grade one model output against the gold answer under ``options`` (default: only a
    ``\boxed{}`` answer of a sample that was not cut off counts). ``truncated``: the sample
    stopped at the token cap (see :func:`is_truncated`). Never raises."""
    options = options or DEFAULT_GRADING
    try:
        extracted = find_boxed(output) if options.require_boxed else extract_answer(output)
    except Exception:  # pragma: no cover - defensive: extraction must never crash a run
        log.debug("answer extraction failed", exc_info=True)
        extracted = None
    if truncated and options.truncated_is_incorrect:
        return Grade(False, extracted, "truncated at maxTokens")
    if extracted is None:
        return Grade(False, None, "no \\boxed{} answer" if options.require_boxed else "no answer found")
    try:
        if not isinstance(gold, str):
            gold = "" if gold is None else str(gold)
        gold_ans = _gold_answer(gold)
        if not gold_ans:
            return Grade(False, extracted, "empty gold answer")
        return _compare(extracted, gold_ans, options)
    except Exception as exc:  # pragma: no cover - defensive: grading must never crash a run
        log.debug("grading failed", exc_info=True)
        return Grade(False, extracted, f"grading error: {type(exc).__name__}")


def is_correct(output: Any, gold: Any, options: GradingSpec | None = None, *, truncated: bool = False) -> bool:
    """Whether ``output``'s final answer equals ``gold`` under ``options`` (see :func:`grade`)."""
    return grade(output, gold, options, truncated=truncated).correct
