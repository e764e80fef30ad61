"""o1pruner: Length-Harmonizing Fine-Tuning (O1-Pruner, arXiv 2501.12570).

Public maths API (pure, no torch): :func:`aes` and :func:`length_harmonizing_reward`.
"""

from o1pruner.rewards import aes, length_harmonizing_reward

__all__ = ["aes", "length_harmonizing_reward", "__version__"]
__version__ = "0.1.0"
