"""Fixtures shared by every test folder (keep this file minimal)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))  # --import-mode=importlib adds no test folder
from tier_times import register as register_tier_times  # noqa: E402  (tests/tier_times.py)


def pytest_configure(config: pytest.Config) -> None:
    register_tier_times(config)


#: Dummy credentials for the local moto server; never real ones.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server over HTTP on 127.0.0.1 (free port); yields its endpoint URL.

    Dummy AWS credentials are put in the environment for the session (and any profile or
    endpoint override from the developer's shell is removed), so boto3 clients created with
    ``endpoint_url=s3_server`` talk to it.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        for name, value in S3_TEST_ENV.items():
            mp.setenv(name, value)
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's real tokenizer and chat template (the embedded model's)."""
    from transformers import AutoTokenizer

    from o1pruner.models import ensure_embedded

    return AutoTokenizer.from_pretrained(str(ensure_embedded("smollm2-135m-instruct")))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer):
    """A tiny random Llama (2 layers, hidden 32) with SmolLM2's real tokenizer and chat template,
    saved as safetensors: the whole pipeline runs on it in seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
