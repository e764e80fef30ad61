"""The one-command local run, for real: examples/local.yaml on SmolLM2-135M-Instruct on this CPU.

Slow tier (~9 minutes on 2 cores): `pytest -m slow`. It asserts the product's headline claim at
small scale: the pruned model answers the held-out arithmetic set with fewer tokens.
"""

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_local_example_prunes_length(tmp_path):
    import subprocess

    job = yaml.safe_load((ROOT / "examples" / "local.yaml").read_text())
    job["spec"]["storage"]["uri"] = str(tmp_path / "run")
    job["spec"]["metrics"]["port"] = 19400
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(job))
    proc = subprocess.run([sys.executable, "-m", "o1pruner.cli", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    avg = report["results"]["average"]
    print(json.dumps(report["results"], indent=2))
    assert avg["prunedLength"] < avg["baseLength"], avg
    assert report["tokens"]["saved"] > 0
    assert (tmp_path / "run" / "report" / "report.png").stat().st_size > 10_000
