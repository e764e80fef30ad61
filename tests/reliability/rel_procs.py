"""Run ``o1pruner`` as a real subprocess and watch it: training progress from its tqdm bar
(stderr), checkpoints from S3. Used by the preemption tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

O1PRUNER = str(Path(sys.executable).with_name("o1pruner"))
_STEP = re.compile(r"training \([\w-]+\):\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


class TrainProcess:
    """``o1pruner train JOB`` in its own process; ``step`` is the last step its bar showed."""

    def __init__(self, job_path: Path, tmpdir: Path, *args: str):
        env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [O1PRUNER, "train", str(job_path), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.stderr = ""
        self.step = 0
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 65536):
            self.stderr += chunk.decode("utf-8", "replace")
            steps = _STEP.findall(self.stderr[-4000:])
            if steps:
                self.step = max(self.step, int(steps[-1][0]))

    def wait_for(self, predicate, timeout: float = 120.0, poll: float = 0.02) -> bool:
        """Poll ``predicate()`` until true (→ True) or the process exits (→ False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return bool(predicate())
            time.sleep(poll)
        raise TimeoutError(f"condition not met in {timeout}s; stderr tail:\n{self.stderr[-2000:]}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 180.0) -> tuple[int, dict | None]:
        """Wait for exit; ``(returncode, the JSON the command printed or None)``."""
        # stdout is only the small JSON result; stderr is drained by the reader thread
        # (communicate() would race it for stderr and drop part of it)
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        text = out.decode("utf-8", "replace")
        start = text.find("{")
        result = json.loads(text[start:]) if start >= 0 and self.proc.returncode == 0 else None
        return self.proc.returncode, result


def kill(p: TrainProcess) -> int:
    p.signal(signal.SIGKILL)
    return p.proc.wait(timeout=30)
