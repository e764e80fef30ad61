"""The ``o1pruner`` command.

    o1pruner run JOB.yaml                      all phases locally (sample → train → evaluate → report)
    o1pruner sample JOB.yaml [--endpoint URL] [--eval-base]
    o1pruner train JOB.yaml [--max-steps N]
    o1pruner evaluate JOB.yaml --model base|pruned [--endpoint URL]
    o1pruner fetch-model URI DEST              copy a model (s3://, embedded:, local) into DEST
    o1pruner validate JOB.yaml                 check a PruningJob and print it with defaults
    o1pruner crd                               print the CRD generated from the spec model

Exit codes: 0 done, 2 invalid spec, 3 a phase failed (its outputs so far are kept),
4 storage unreachable or refused (after retries), 143 preempted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from o1pruner.spec import SpecError, dump_job, load_job


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "urllib3", "botocore", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _job(path: str, endpoint: str | None = None):
    job = load_job(path)
    if endpoint:
        job.spec.sampling.endpoint = endpoint
    return job


def _print_report(report: dict) -> None:
    from o1pruner.rounds import rounds_text

    avg = report["results"]["average"]
    print(json.dumps(report["results"], indent=2))
    aes = avg.get("aes")
    print(
        f"\nmean length {avg['baseLength']:.1f} → {avg['prunedLength']:.1f} tokens "
        f"({avg['lengthReduction'] * 100:.1f}% shorter), accuracy {avg['baseAccuracy']:.3f} → "
        f"{avg['prunedAccuracy']:.3f}, AES {'n/a' if aes is None else f'{aes:.3f}'}; "
        f"tokens saved {report['tokens']['saved']} ({report['tokens']['savedFraction'] * 100:.1f}%)"
    )
    sv = report.get("savings") or {}
    if sv.get("tokensSavedPerMillionRequests") is not None:
        hours = sv.get("acceleratorHoursSavedPerMillionRequests") or sv.get("samplerHoursSavedPerMillionRequests")
        unit = "accelerator" if sv.get("acceleratorHoursSavedPerMillionRequests") else "sampler"
        print(f"per million requests: {sv['tokensSavedPerMillionRequests']:.3g} tokens saved"
              + (f", {hours:.3g} {unit}-hours at the measured {sv['samplerTokensPerSecond']:.0f} tokens/s"
                 if hours is not None else ""))
    if report.get("guard"):
        print(report["guard"]["message"] + ("" if report["accepted"] else "\npruned model NOT accepted"))
    if report.get("rounds"):
        print(f"{rounds_text(report['rounds'], report.get('resultRound'))} ({report['stopReason']})")


def _in_round(ctx, round_: int):
    """The context of pruning round ``round_`` (1: the job's own, today's keys)."""
    return ctx if round_ == 1 else ctx.for_round(round_)


def cmd_run(args) -> int:
    from o1pruner.pipeline import ROUNDS_REPORT, run_local

    job = _job(args.job, args.endpoint)
    report = run_local(job, max_steps=args.max_steps)
    _print_report(report)
    key, png = (ROUNDS_REPORT, ROUNDS_REPORT) if report.get("rounds") else ("report/report", "report")
    print(f"\nreport: {job.spec.storage.uri.rstrip('/')}/{key}.json (and {png}.png)")
    return 0


def cmd_sample(args) -> int:
    from o1pruner.pipeline import open_context, phase_evaluate, phase_sample, write_termination

    ctx = _in_round(open_context(_job(args.job, args.endpoint), phase="sample"), args.round)
    out = phase_sample(ctx)
    print(json.dumps(out, indent=2))
    if out.get("diagnostics"):  # read by the operator (condition ReferenceTruncated)
        write_termination({"diagnostics": out["diagnostics"]})
    if args.eval_base:
        print(json.dumps(phase_evaluate(ctx, "base"), indent=2))
    return 0


def cmd_train(args) -> int:
    from o1pruner.pipeline import open_context, phase_train

    ctx = _in_round(open_context(_job(args.job), phase="train"), args.round)
    print(json.dumps(phase_train(ctx, max_steps=args.max_steps), indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from o1pruner.pipeline import make_report, open_context, phase_evaluate, write_termination_message

    ctx = _in_round(open_context(_job(args.job, args.endpoint), phase="evaluate"), args.round)
    print(json.dumps(phase_evaluate(ctx, args.model), indent=2))
    report = make_report(ctx)
    if report is not None:
        _print_report(report)
        write_termination_message(report)
    return 0


def cmd_fetch_model(args) -> int:
    import shutil
    from pathlib import Path

    from o1pruner.pipeline import _download_s3_dir
    from o1pruner.models import resolve_model

    if args.uri.startswith("s3://"):
        _download_s3_dir(args.uri, Path(args.dest))
    else:
        shutil.copytree(resolve_model(args.uri), args.dest, dirs_exist_ok=True)
    print(args.dest)
    return 0


def cmd_validate(args) -> int:
    print(dump_job(load_job(args.job)), end="")
    return 0


def cmd_crd(args) -> int:
    from o1pruner.crd import crd_yaml

    print(crd_yaml(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="o1pruner", description="O1-Pruner: length-harmonizing fine-tuning")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run every phase locally")
    r.add_argument("job")
    r.add_argument("--endpoint", help="OpenAI-compatible server (…/v1) to sample from instead of in-process")
    r.add_argument("--max-steps", type=int, default=None)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sample", help="reference sampling and statistics")
    s.add_argument("job")
    s.add_argument("--endpoint")
    s.add_argument("--eval-base", action="store_true", help="also evaluate the base model on the same server")
    s.add_argument("--round", type=int, default=1, help="pruning round (spec.rounds); >= 2 samples the previous "
                   "round's pruned model, under rounds/<n>/")
    s.set_defaults(func=cmd_sample)

    t = sub.add_parser("train", help="length-harmonizing fine-tuning (resumes from the latest checkpoint)")
    t.add_argument("job")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--round", type=int, default=1, help="pruning round: >= 2 trains the previous round's model")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate base or pruned model; writes the report when both exist")
    e.add_argument("job")
    e.add_argument("--model", choices=["base", "pruned"], required=True)
    e.add_argument("--endpoint")
    e.add_argument("--round", type=int, default=1, help="pruning round whose pruned model is evaluated")
    e.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("fetch-model", help="copy a model into a directory (init containers)")
    f.add_argument("uri")
    f.add_argument("dest")
    f.set_defaults(func=cmd_fetch_model)

    v = sub.add_parser("validate", help="validate a PruningJob and print it with defaults")
    v.add_argument("job")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("crd", help="print the CRD generated from the spec model")
    c.set_defaults(func=cmd_crd)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    from o1pruner.pipeline import PhaseError
    from o1pruner.storage import StorageError
    from o1pruner.training import PreemptedError

    try:
        return args.func(args)
    except SpecError as exc:
        print(f"invalid PruningJob: {exc}", file=sys.stderr)
        return 2
    except PreemptedError as exc:
        print(f"preempted: {exc}", file=sys.stderr)
        return 143
    except PhaseError as exc:
        print(f"phase failed: {exc}", file=sys.stderr)
        return 3
    except StorageError as exc:
        where = f" ({exc.uri})" if exc.uri else ""
        print(f"storage failed{where}: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
