"""OpenAI-compatible HTTP sampler: talks to the vLLM server the operator deploys.

One ``/v1/chat/completions`` request per problem with ``n = K`` and a per-problem ``seed``;
bounded concurrency (a thread pool of ``concurrency`` workers over one pooled HTTP client);
retries with exponential backoff and jitter on connection errors, timeouts, 408/429/5xx.

Per-sample token counts, in order of preference: the choice's ``token_ids`` (vLLM's
``return_token_ids`` extension), the length of the choice's ``logprobs.content``, the request's
``usage.completion_tokens`` when n = 1, and last a ``count_tokens`` callable (the model's
tokenizer) given by the caller.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx

from o1pruner.sampling.base import Completion, GenerationParams, Messages, Sampler

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class SamplingRequestError(RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""


class OpenAISampler(Sampler):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        api_key: str | None = None,
        count_tokens: Callable[[str], int] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.count_tokens = count_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers=headers,
            transport=transport,
        )
        self.requests_sent = 0

    def close(self) -> None:
        self._client.close()

    def _body(self, messages: Messages, params: GenerationParams, seed: int) -> dict:
        return {
            "model": self.model,
            "messages": messages,
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "seed": seed,
            "return_token_ids": True,
        }

    def _post(self, body: dict) -> dict:
        delay = self.backoff_base
        for attempt in range(self.max_retries + 1):
            self.requests_sent += 1
            try:
                resp = self._client.post("/chat/completions", json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                error: str = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    return resp.json()
                error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code not in RETRYABLE_STATUS:
                    raise SamplingRequestError(error)
            if attempt == self.max_retries:
                raise SamplingRequestError(f"gave up after {attempt + 1} attempts: {error}")
            sleep = min(self.backoff_max, delay) * (0.5 + random.random() / 2)
            log.warning("sampling request failed (%s); retry %d/%d in %.1fs", error, attempt + 1, self.max_retries, sleep)
            time.sleep(sleep)
            delay *= 2
        raise AssertionError("unreachable")

    def _completions(self, data: dict, n: int) -> list[Completion]:
        choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise SamplingRequestError(f"asked for n={n} choices, server returned {len(choices)}")
        usage = data.get("usage") or {}
        out = []
        for choice in choices:
            text = (choice.get("message") or {}).get("content") or ""
            tokens = self._choice_tokens(choice, text, n, usage)
            out.append(Completion(text=text, tokens=tokens, finish_reason=choice.get("finish_reason")))
        return out

    def _choice_tokens(self, choice: dict, text: str, n: int, usage: dict) -> int:
        if choice.get("token_ids") is not None:
            return len(choice["token_ids"])
        logprobs = choice.get("logprobs") or {}
        if logprobs.get("content") is not None:
            return len(logprobs["content"])
        if n == 1 and usage.get("completion_tokens") is not None:
            return int(usage["completion_tokens"])
        if self.count_tokens is not None:
            return self.count_tokens(text)
        raise SamplingRequestError("server gave no per-choice token counts and no tokenizer was supplied")

    def _one(self, key: str, messages: Messages, params: GenerationParams) -> list[Completion]:
        data = self._post(self._body(messages, params, params.seed_for(key)))
        return self._completions(data, params.n)

    def generate(
        self, prompts: Sequence[tuple[str, Messages]], params: GenerationParams
    ) -> Iterator[tuple[str, list[Completion] | Exception]]:
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sampler") as pool:
            futures = {pool.submit(self._one, key, messages, params): key for key, messages in prompts}
            try:
                for fut in as_completed(futures):
                    key = futures[fut]
                    try:
                        yield key, fut.result()
                    except Exception as exc:  # one failed problem never aborts the others
                        yield key, exc
            finally:
                for fut in futures:
                    fut.cancel()

    def health(self) -> bool:
        """True when the server's ``/health`` (vLLM) answers 200."""
        root = self.base_url.removesuffix("/v1")
        try:
            return httpx.get(f"{root}/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False
