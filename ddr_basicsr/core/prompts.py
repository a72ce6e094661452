"""Degradation prompt pairs: Table 7 of the paper and user-defined pairs (Eq. 6 template)."""
from collections import OrderedDict
from collections.abc import Sequence as SequenceType
from typing import Mapping, Optional, Sequence, Tuple, Union

#: Eq. 6: P_d^- = "A {d^-} photo with low-quality."; P_d^+ = "A {d^+} photo with high-quality."
DEGRADED_TEMPLATE = 'A {} photo with low-quality.'
CLEAN_TEMPLATE = 'A {} photo with high-quality.'

#: Table 7: (degraded word, clean word) of the five degradation types of the paper.
TABLE7_WORDS = OrderedDict([
    ('color', ('unnatural color', 'real color')),
    ('noise', ('noise degraded', 'clean')),
    ('blur', ('blurry', 'sharp')),
    ('exposure', ('unnatural exposure', 'natural exposure')),
    ('content', ('bad content', 'clear content')),
])

#: D of the paper's restoration experiments (Sec. 4.1).
RESTORATION_DEGRADATIONS = ('color', 'content', 'blur')
#: D of the paper's blind IQA experiments (Sec. 4.1).
BIQA_DEGRADATIONS = ('color', 'noise', 'blur', 'exposure')

PromptPair = Tuple[str, str]
DegradationSpec = Union[str, Sequence[str]]

_SENTENCE_ENDINGS = ('.', '!', '?')


def _is_sentence(text: str) -> bool:
    return text.rstrip().endswith(_SENTENCE_ENDINGS)


def prompt_pair(degraded: str, clean: str) -> PromptPair:
    """Full (degraded, clean) sentences from two words (Eq. 6) or two sentences ending in '.', '!' or '?'."""
    for text in (degraded, clean):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f'a prompt must be a non-empty string, got {text!r}')
    if _is_sentence(degraded) != _is_sentence(clean):
        raise ValueError(
            f'prompt pair ({degraded!r}, {clean!r}) mixes a sentence and a word: give two words '
            f'(filled into "{DEGRADED_TEMPLATE}" / "{CLEAN_TEMPLATE}") or two sentences ending with a period')
    if _is_sentence(degraded):
        return degraded.strip(), clean.strip()
    return DEGRADED_TEMPLATE.format(degraded.strip()), CLEAN_TEMPLATE.format(clean.strip())


def _as_pair(name: str, value: Sequence[str]) -> PromptPair:
    if not name.strip():
        raise ValueError(f'a degradation name must not be empty, got {name!r} (it names a CSV column)')
    if isinstance(value, str) or not isinstance(value, SequenceType) or len(value) != 2:
        raise ValueError(f'prompts[{name!r}] must be a pair (degraded, clean), got {value!r}')
    return prompt_pair(value[0], value[1])


def resolve_prompts(degradations: Optional[Sequence[DegradationSpec]] = None,
                    prompts: Optional[Mapping[str, Sequence[str]]] = None) -> 'OrderedDict[str, PromptPair]':
    """Map each degradation name to its (degraded, clean) sentences.

    ``degradations`` items are Table 7 names, names defined in ``prompts`` (which may also override
    Table 7), or (degraded, clean) pairs named ``"degraded/clean"``. When ``degradations`` is None,
    the keys of ``prompts`` are used, or the paper's restoration set if no prompts are given.
    """
    custom = OrderedDict((str(name), _as_pair(str(name), pair)) for name, pair in (prompts or {}).items())
    if degradations is None:
        degradations = list(custom) if custom else list(RESTORATION_DEGRADATIONS)
    if isinstance(degradations, str):
        degradations = [name.strip() for name in degradations.split(',') if name.strip()]
    resolved = OrderedDict()
    for item in degradations:
        if isinstance(item, str):
            if item in custom:
                resolved[item] = custom[item]
            elif item in TABLE7_WORDS:
                resolved[item] = prompt_pair(*TABLE7_WORDS[item])
            else:
                valid = list(TABLE7_WORDS) + [name for name in custom if name not in TABLE7_WORDS]
                raise ValueError(f'unknown degradation {item!r}; valid names: {", ".join(valid)}. '
                                 'Define your own with prompts={name: (degraded, clean)}.')
        else:
            pair = _as_pair(str(item), item)
            resolved[f'{item[0]}/{item[1]}'] = pair
    if not resolved:
        raise ValueError('the degradation set is empty; give at least one degradation (Eq. 7 averages over D)')
    return resolved
