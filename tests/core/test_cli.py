"""The CLI's contract with the operator: one line on stderr and a distinct exit code per kind of failure."""

import pytest

from o1pruner import cli
from o1pruner.storage import StorageError


def test_a_storage_failure_is_one_line_and_exit_4(monkeypatch, capsys):
    def fail(_args):
        raise StorageError("AccessDenied: not allowed", uri="s3://runs/job/manifest.json", code="AccessDenied")

    monkeypatch.setattr(cli, "cmd_validate", fail)
    assert cli.main(["validate", "job.yaml"]) == 4
    err = capsys.readouterr().err.strip()
    assert err == "storage failed (s3://runs/job/manifest.json): AccessDenied: not allowed"


def test_an_invalid_spec_exits_2_naming_the_field(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("apiVersion: o1pruner.dev/v1alpha1\nkind: PruningJob\nmetadata: {name: x}\n"
                   "spec:\n  model: {source: Qwen/QwQ-32B-Preview}\n  datasets:\n"
                   "    train: {name: t, source: builtin:arithmetic}\n    eval: [{name: e, source: builtin:arithmetic}]\n"
                   "  storage: {uri: /tmp/x}\n  sampling: {k: 0}\n")
    assert cli.main(["validate", str(job)]) == 2
    assert "spec.sampling.k" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["crd"]])
def test_crd_prints_the_committed_crd(argv, capsys):
    from pathlib import Path

    assert cli.main(argv) in (0, None)
    committed = (Path(__file__).resolve().parents[2] / "crds" / "pruningjobs.o1pruner.dev.yaml").read_text()
    assert capsys.readouterr().out.strip() == committed.strip()
