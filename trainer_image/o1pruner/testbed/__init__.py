"""The long-thought testbed: a built-in reasoning task, its reference model and its lower bound.

- :mod:`o1pruner.testbed.traces` generates problems and redundant reasoning traces, and the
  minimal trace of every problem (its length L_min is a known lower bound);
- :mod:`o1pruner.testbed.vocab` builds the word-level tokenizer and chat template;
- :mod:`o1pruner.testbed.build` trains the reference model from scratch, or warms a pretrained
  embedded model up on the traces (deterministic from a seed on one kind of CPU, cached by a
  hash of its recipe), and saves an ordinary Hugging Face model directory.
"""
