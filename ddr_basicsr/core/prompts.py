"""Degradation prompt pairs: Table 7 of the paper and user-defined pairs (Eq. 6 template), and :class:`PromptSet`,
the one type in which a prompt set travels from where it is given (a mapping, a YAML/JSON file, a tuned ``.pt``
file) to DDR. Standard library and PyYAML only at import (``--help`` of the commands stays fast)."""
import os
from collections import OrderedDict
from collections.abc import Sequence as SequenceType
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Sequence, Union

import yaml

from ddr_basicsr.core.prompt_templates import CLEAN_TEMPLATE, DEGRADED_TEMPLATE, PromptPair

if TYPE_CHECKING:
    from ddr_basicsr.core.learned_prompts import LearnedPrompts

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


class PromptSet:
    """A prompt set as DDR takes it: hand-written pairs {name: (degraded, clean)} (two words for Eq. 6's template,
    or two sentences), or the learned context vectors of a ``ddr-tune-prompts`` file (``learned``). Make one with
    :meth:`load`, where the prompts are given, and pass it down as it is."""

    def __init__(self, pairs: Mapping[str, Sequence[str]], learned: 'Optional[LearnedPrompts]' = None) -> None:
        self.pairs: Dict[str, Sequence[str]] = dict(pairs)
        self.learned = learned

    @classmethod
    def load(cls, prompts: 'PromptsArgument') -> 'PromptSet':
        """The prompt set of ``prompts``: a PromptSet (returned as it is), a mapping {name: [degraded, clean]}, or
        a file: a tuned prompt file for a ``.pt`` path, else YAML or JSON holding such a mapping.

        Raises :class:`~ddr_basicsr.core.learned_prompts.PromptFileError` for a bad prompt file, ValueError for a
        YAML/JSON file that is not such a mapping, OSError for a file that cannot be read.
        """
        if isinstance(prompts, PromptSet):
            return prompts
        if isinstance(prompts, Mapping):
            return cls(prompts)
        path = os.fspath(prompts)
        if path.endswith('.pt'):
            from ddr_basicsr.core.learned_prompts import load_prompt_file
            learned = load_prompt_file(path)
            return cls(learned.prompts, learned)
        with open(path, encoding='utf-8') as handle:
            try:
                pairs = yaml.safe_load(handle)
            except yaml.YAMLError as error:
                raise ValueError(f'{path} is not valid YAML/JSON: {" ".join(str(error).split())}') from None
        if not isinstance(pairs, dict) or not pairs:
            raise ValueError(f'{path}: expected a mapping {{name: [degraded prompt, clean prompt]}}, '
                             f'e.g. {{"haze": ["hazy", "clear"]}}')
        return cls(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def select(self, degradations: Optional[Sequence[DegradationSpec]] = None) -> Dict[str, PromptPair]:
        """{name: (degraded, clean) sentences} of ``degradations`` (see :func:`resolve_prompts`; for learned prompts,
        names among theirs, or None for all of them)."""
        if self.learned is not None:
            return self.learned.select(degradations)
        return resolve_prompts(degradations, self.pairs)


#: What ``DDR(prompts=...)``, the ``prompts:`` option of DDRLoss and calculate_ddr, and ``--prompts`` take.
PromptsArgument = Union[PromptSet, Mapping[str, Sequence[str]], str, os.PathLike]
