"""Eq. 6 of the paper: the two sentences of a degradation's prompt pair, read by the hand-written prompt sets
(:mod:`.prompts`) and by the learned ones (:mod:`.learned_prompts`)."""
from typing import Tuple

#: Eq. 6: P_d^- = "A {d^-} photo with low-quality."; P_d^+ = "A {d^+} photo with high-quality."
DEGRADED_TEMPLATE = 'A {} photo with low-quality.'
CLEAN_TEMPLATE = 'A {} photo with high-quality.'

#: (degraded sentence, clean sentence) of one degradation.
PromptPair = Tuple[str, str]
