"""The tier-timing plugin (tests/tier_times.py) that bench/readme_commands.py reads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tier_times import tier_of


def test_tier_is_the_marker_a_test_carries():
    assert tier_of({"vllm", "timeout"}) == "vllm"
    assert tier_of({"slow"}) == "slow"
    assert tier_of({"prometheus", "asyncio"}) == "prometheus"
    assert tier_of({"parametrize"}) == "default"


def test_session_writes_each_tiers_counts_and_seconds(tmp_path):
    (tmp_path / "slow").mkdir()  # a folder named like a tier: its unmarked tests stay in the default tier
    (tmp_path / "slow" / "test_in_folder.py").write_text("def test_unit():\n    pass\n")
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        import pytest, time

        def test_fast():
            pass

        @pytest.mark.slow
        def test_slow():
            time.sleep(0.2)

        @pytest.mark.slow
        def test_slow_fails():
            assert False
    """))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).resolve().parents[1])!r})
        from tier_times import register

        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: slow")
            register(config)
    """))
    out = tmp_path / "times.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env={**__import__("os").environ, "O1PRUNER_TIER_TIMES": str(out)},
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout
    data = json.loads(out.read_text())
    assert data["exit_status"] == 1 and data["wall_seconds"] > 0
    assert data["tiers"]["default"]["passed"] == 2
    assert data["tiers"]["slow"]["passed"] == 1 and data["tiers"]["slow"]["failed"] == 1
    assert data["tiers"]["slow"]["seconds"] >= 0.2 > data["tiers"]["default"]["seconds"]
