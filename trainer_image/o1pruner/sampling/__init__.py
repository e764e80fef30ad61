"""Sampling behind one interface: ``openai`` (a vLLM OpenAI-compatible server) and ``hf``
(in-process transformers). :func:`o1pruner.sampling.collect.sample_problems` drives either one,
grades the samples and keeps resumable shards in storage."""

from o1pruner.sampling.base import Completion, GenerationParams, Messages, Sampler

__all__ = ["Completion", "GenerationParams", "Messages", "Sampler"]
