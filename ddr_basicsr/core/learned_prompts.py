"""Learnable degradation prompts: CoOp-style context vectors for the prompt pairs of Eq. 6 (paper A.1 b).

The token embeddings of each prompt become trainable vectors in the text encoder's token-embedding space,
initialised from the embeddings of the hand-written tokens, so at step 0 the text features, hence T_d (Eq. 3)
and every DDR score, are those of the hand-written prompts. CLIP stays frozen: the vectors enter through a
forward hook on its token embedding, and only they receive gradients. Two layouts:

* ``per_degradation``: every token of every prompt (degradation words and template) has its own vector;
  works for any sentence.
* ``shared``: the template tokens of Eq. 6 ("A ... photo with low-quality." / "... high-quality.") are one
  set of vectors shared by all degradations (one set per template), the degradation words stay fixed, as
  CoOp's unified context with fixed class names.

A prompt file (``torch.save`` of plain types, read with ``weights_only=True``) records the prompts, the
layout, the vectors, the CLIP backbone they live in (a fingerprint of its token embedding and text projection)
and what they were trained on. Loading it with another backbone is refused.
"""
import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ddr_basicsr.core.clip_loading import load_error_cause
from ddr_basicsr.core.prompt_templates import CLEAN_TEMPLATE, DEGRADED_TEMPLATE, PromptPair
from ddr_basicsr.utils.atomic_files import atomic_path

CONTEXTS = ('per_degradation', 'shared')
PROMPT_FILE_FORMAT = 'ddr-basicsr learned prompts'
PROMPT_FILE_VERSION = 1

Tokenizer = Callable[[Sequence[str]], torch.Tensor]


class PromptFileError(ValueError):
    """A prompt file that cannot be read or does not fit the loaded CLIP; the message names the fix."""


def token_embedding_of(clip: nn.Module) -> nn.Embedding:
    """The token embedding of an open_clip CLIP (``token_embedding``, or ``text.token_embedding``)."""
    embedding = getattr(clip, 'token_embedding', None) or getattr(getattr(clip, 'text', None), 'token_embedding', None)
    if not isinstance(embedding, nn.Embedding):
        raise ValueError('learnable prompts need a CLIP whose text tower has a token embedding (open_clip CLIP or '
                         'CustomTextCLIP); this model has none (a Hugging Face text tower?)')
    return embedding


def backbone_fingerprint(clip: nn.Module) -> str:
    """sha256 (16 hex digits) of the float32 token embedding and text projection: the space the vectors live in."""
    digest = hashlib.sha256()
    projection = getattr(clip, 'text_projection', None)
    if isinstance(projection, nn.Linear):
        projection = projection.weight
    for tensor in (token_embedding_of(clip).weight, projection):
        if tensor is not None:
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def describe_backbone(clip: nn.Module, description: str) -> Dict[str, object]:
    """What a prompt file records about the CLIP it was tuned on."""
    embedding = token_embedding_of(clip)
    return {'description': description, 'vocab_size': embedding.num_embeddings,
            'token_width': embedding.embedding_dim, 'fingerprint': backbone_fingerprint(clip)}


def _content_tokens(tokenizer: Tokenizer, text: str) -> List[int]:
    """Token ids of ``text`` between the start and end tokens (the end token has the largest id)."""
    row = tokenizer([text])[0]
    return row[1:int(row.argmax())].tolist()


def _template_parts(template: str) -> Tuple[str, str]:
    prefix, suffix = template.split('{}')
    return prefix.strip(), suffix.strip()


class PromptLearner(nn.Module):
    """Learnable context vectors for prompt pairs {name: (degraded sentence, clean sentence)}.

    ``tokens`` (2D, L): the D degraded prompts then the D clean ones; ``slots`` (2D, L): for each position, the
    row of ``context`` that replaces its token embedding, or -1 to keep the token. ``context`` (K, W) starts as
    the embeddings of the tokens it replaces.
    """

    def __init__(self, clip: nn.Module, tokenizer: Tokenizer, prompts: Mapping[str, PromptPair],
                 context: str = 'per_degradation'):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; choose one of {', '.join(CONTEXTS)}")
        self.context_layout = context
        self.names = tuple(prompts)
        sentences = [pair[0] for pair in prompts.values()] + [pair[1] for pair in prompts.values()]
        tokens = tokenizer(sentences)
        slots = torch.full_like(tokens, -1)
        initial: List[int] = []
        if context == 'per_degradation':
            for row, end in enumerate(tokens.argmax(dim=-1).tolist()):
                slots[row, 1:end] = torch.arange(len(initial), len(initial) + end - 1)
                initial += tokens[row, 1:end].tolist()
        else:
            initial = self._shared_slots(tokenizer, tokens, slots, len(prompts))
        embedding = token_embedding_of(clip)
        self.register_buffer('tokens', tokens, persistent=False)
        self.register_buffer('slots', slots, persistent=False)
        self.register_buffer('initial_tokens', torch.tensor(initial, dtype=torch.long), persistent=False)
        self.context = nn.Parameter(embedding.weight.detach()[self.initial_tokens].float().clone())

    @staticmethod
    def _shared_slots(tokenizer: Tokenizer, tokens: torch.Tensor, slots: torch.Tensor, count: int) -> List[int]:
        """Fill ``slots`` so the template tokens of Eq. 6 share one vector per template position; the ids."""
        initial: List[int] = []
        for first_row, template in ((0, DEGRADED_TEMPLATE), (count, CLEAN_TEMPLATE)):
            prefix, suffix = (_content_tokens(tokenizer, part) for part in _template_parts(template))
            base = len(initial)
            initial += prefix + suffix
            for row in range(first_row, first_row + count):
                end = int(tokens[row].argmax())
                content = tokens[row, 1:end].tolist()
                if content[:len(prefix)] != prefix or content[len(content) - len(suffix):] != suffix:
                    raise ValueError(f'context "shared" needs prompts written with the Eq. 6 template "{template}"; '
                                     f'the prompt of token row {row} is another sentence: use context '
                                     '"per_degradation" for full-sentence prompts')
                slots[row, 1:1 + len(prefix)] = torch.arange(base, base + len(prefix))
                slots[row, end - len(suffix):end] = torch.arange(base + len(prefix), base + len(prefix) + len(suffix))
        return initial

    def _replace_embeddings(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        keep = (self.slots < 0).unsqueeze(-1)
        return torch.where(keep, output, self.context[self.slots.clamp(min=0)].to(output.dtype))

    def text_features(self, clip: nn.Module) -> torch.Tensor:
        """Φ_t of the 2D prompts (degraded, then clean) with the context vectors in place: (2D, E), float32,
        differentiable with respect to ``context`` only (CLIP's own parameters are not touched)."""
        handle = token_embedding_of(clip).register_forward_hook(self._replace_embeddings)
        try:
            return clip.encode_text(self.tokens).float()
        finally:
            handle.remove()


@dataclass
class LearnedPrompts:
    """The content of a prompt file (see the module docstring); ``path`` is where it was read from."""
    prompts: Dict[str, PromptPair]
    context_layout: str
    context: torch.Tensor
    initial_tokens: torch.Tensor
    backbone: Dict[str, object]
    training: Dict[str, object] = field(default_factory=dict)
    path: str = ''

    @property
    def digest(self) -> str:
        """sha256 (16 hex digits) of the prompts, layout and vectors: what the scores depend on."""
        digest = hashlib.sha256(repr((sorted(self.prompts.items()), self.context_layout)).encode('utf-8'))
        digest.update(self.context.float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def opinion_aware_label(self) -> str:
        """How reports name these prompts: trained on subjective scores, so opinion-aware (not Table 3's kind)."""
        training = self.training
        images = f", {training['train_images']} training images" if 'train_images' in training else ''
        return (f"opinion-aware: prompts tuned on the {training.get('subjective_score', 'subjective scores')} of "
                f"{training.get('dataset', 'an unrecorded dataset')}{images} ({os.path.basename(self.path)})")

    def select(self, degradations: Optional[Union[str, Sequence]]) -> Dict[str, PromptPair]:
        """The prompts of ``degradations`` (names, a comma-separated string, or None for all of them)."""
        if degradations is None:
            return dict(self.prompts)
        if isinstance(degradations, str):
            degradations = [name.strip() for name in degradations.split(',') if name.strip()]
        missing = [item for item in degradations if not isinstance(item, str) or item not in self.prompts]
        if missing or not degradations:
            raise PromptFileError(
                f'{self.path}: the tuned prompts hold the degradations {", ".join(self.prompts)}; '
                f'{missing or "an empty set"} cannot be used with them. Choose degradations among those '
                f'(or leave them unset), or tune prompts for yours: ddr-tune-prompts --degradations ...')
        return {name: self.prompts[name] for name in degradations}

    def check_backbone(self, clip: nn.Module, description: str = 'the loaded CLIP') -> None:
        """Refuse a CLIP other than the one the vectors were tuned in (different token-embedding space)."""
        fingerprint = backbone_fingerprint(clip)
        if fingerprint != self.backbone.get('fingerprint'):
            raise PromptFileError(
                f"{self.path}: these prompts were tuned with CLIP {self.backbone.get('description')!r} (fingerprint "
                f"{self.backbone.get('fingerprint')}), but {description!r} has fingerprint {fingerprint}: their "
                'context vectors live in another token-embedding space. Load the same CLIP weights (model / pretrained '
                'options) or tune prompts for this CLIP with ddr-tune-prompts.')

    def learner(self, clip: nn.Module, tokenizer: Tokenizer, description: str = 'the loaded CLIP') -> PromptLearner:
        """A :class:`PromptLearner` for ``clip`` holding these vectors (after :meth:`check_backbone`)."""
        self.check_backbone(clip, description)
        learner = PromptLearner(clip, tokenizer, self.prompts, self.context_layout)
        if not torch.equal(learner.initial_tokens, self.initial_tokens):
            raise PromptFileError(f'{self.path}: the tokenizer splits the prompts differently from when they were '
                                  'tuned; use the tokenizer of the CLIP named in the file')
        with torch.no_grad():
            learner.context.copy_(self.context)
        return learner.to(self.context.device)


def save_prompt_file(path: str, learner: PromptLearner, prompts: Mapping[str, PromptPair],
                     backbone: Mapping[str, object], training: Mapping[str, object]) -> None:
    """Write the vectors of ``learner`` and what they belong to (atomically)."""
    content = {'format': PROMPT_FILE_FORMAT, 'version': PROMPT_FILE_VERSION,
               'prompts': {name: list(pair) for name, pair in prompts.items()},
               'context_layout': learner.context_layout, 'context': learner.context.detach().float().cpu().clone(),
               'initial_tokens': learner.initial_tokens.cpu().clone(), 'backbone': dict(backbone),
               'training': dict(training)}
    with atomic_path(path) as temporary:
        torch.save(content, temporary)


def _content_problem(content: dict) -> str:
    """What is wrong with the entries of a prompt file ('' when nothing)."""
    prompts, context, tokens = content.get('prompts'), content.get('context'), content.get('initial_tokens')
    if not isinstance(prompts, dict) or not prompts:
        return 'no "prompts" entry {name: [degraded sentence, clean sentence]}'
    for name, pair in prompts.items():
        if not (isinstance(name, str) and name.strip() and isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(text, str) and text.strip() for text in pair)):
            return f'prompts[{name!r}] is {pair!r}, not a pair of sentences'
    if content.get('context_layout') not in CONTEXTS:
        return f'"context_layout" is {content.get("context_layout")!r}, not one of {", ".join(CONTEXTS)}'
    if not (torch.is_tensor(context) and context.is_floating_point() and context.dim() == 2):
        return '"context" is not a 2-D float tensor of context vectors'
    if not bool(torch.isfinite(context).all()):
        return 'the context vectors hold NaN or Inf values (did the tuning diverge?)'
    if not (torch.is_tensor(tokens) and tokens.dtype == torch.long and tuple(tokens.shape) == context.shape[:1]):
        return '"initial_tokens" is not one token id per context vector'
    if not isinstance(content.get('backbone'), dict) or not isinstance(content.get('training'), dict):
        return 'no "backbone" or "training" record'
    return ''


def load_prompt_file(path: Union[str, os.PathLike]) -> LearnedPrompts:
    """Read a prompt file written by :func:`save_prompt_file` (``ddr-tune-prompts``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PromptFileError(f'prompt file not found: {path} (write one with ddr-tune-prompts, or give prompts as '
                              'a YAML/JSON file or {name: [degraded, clean]})')
    try:
        content = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # pickle and zip errors of many types
        raise PromptFileError(f'{path} is not a prompt file written by ddr-tune-prompts: '
                              f'{load_error_cause(error)}') from error
    if not isinstance(content, dict) or content.get('format') != PROMPT_FILE_FORMAT:
        raise PromptFileError(f'{path} is not a prompt file written by ddr-tune-prompts (no "format: '
                              f'{PROMPT_FILE_FORMAT}" entry)')
    if content.get('version') != PROMPT_FILE_VERSION:
        raise PromptFileError(f'{path}: prompt file version {content.get("version")} is not supported '
                              f'(this ddr-basicsr reads version {PROMPT_FILE_VERSION})')
    problem = _content_problem(content)
    if problem:
        raise PromptFileError(f'{path} is damaged: {problem}; tune the prompts again with ddr-tune-prompts')
    return LearnedPrompts({name: tuple(pair) for name, pair in content['prompts'].items()},
                          content['context_layout'], content['context'], content['initial_tokens'],
                          content['backbone'], content['training'], path)
