"""The testbed's tokenizer: one token per word or number, with a chat template.

Built with the ``tokenizers`` library (a WordLevel model over whitespace-split words) and
wrapped as a ``PreTrainedTokenizerFast`` so it saves and loads like any Hugging Face tokenizer
(the samplers, the trainer and vLLM read it from the model directory). Decoding joins tokens
with single spaces, so ``decode(encode(text)) == text`` for any trace and lengths are exact.

The chat template renders the user message only: the testbed model is not an instruction
follower, and a system prompt (if a job sets one) is not shown to it.
"""

from __future__ import annotations

from o1pruner.testbed.traces import WORDS, TaskSpec, TraceStyle

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
SPECIALS = (PAD, UNK, BOS, EOS, USER, ASSISTANT)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "<|user|> {{ message['content'] }} "
    "{% elif message['role'] == 'assistant' %}<|assistant|> {{ message['content'] }} {{ eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def vocabulary(task: TaskSpec, style: TraceStyle) -> list[str]:
    """Special tokens, then every number a trace can write, then the trace words.

    A wrong step carried forward can leave ``[0, max_value]`` by up to ``max_error`` per
    operation, so numbers run from ``-max_ops * max_error`` to ``max_value + max_ops * max_error``.
    """
    slack = task.max_ops * style.max_error
    return [*SPECIALS, *(str(n) for n in range(-slack, task.max_value + slack + 1)), *WORDS]


def build_tokenizer(task: TaskSpec, style: TraceStyle = TraceStyle()):
    """A ``PreTrainedTokenizerFast`` for the traces of ``task`` written in ``style``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary(task, style))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # WordPiece's decoder joins tokens with single spaces (no "##" pieces occur here).
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok
