"""The built wheel carries every package on disk (a subpackage missing from pyproject would ship an
image whose `o1pruner sample` dies with ModuleNotFoundError)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    found = set()
    for top, base in (("o1pruner", ROOT / "trainer_image" / "o1pruner"),
                      ("o1pruner_operator", ROOT / "operator" / "o1pruner_operator")):
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((top, *rel)))
    return found


def test_wheel_contains_every_package_and_the_entry_points(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, text=True)
    # setuptools still ships an unlisted subpackage today but warns it "would be ignored".
    assert "absent from the `packages` configuration" not in proc.stderr, proc.stderr
    assert "deprecated" not in proc.stderr, proc.stderr
    (whl,) = tmp_path.glob("o1_pruner-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    packaged = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    on_disk = _packages_on_disk()
    assert {"o1pruner.sampling", "o1pruner_operator.manifests"} <= on_disk
    assert on_disk <= packaged, f"missing from the wheel: {sorted(on_disk - packaged)}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(whl).read(entry_points).decode()
    assert "o1pruner = o1pruner.cli:main" in text and "o1pruner-operator = o1pruner_operator.main:main" in text
