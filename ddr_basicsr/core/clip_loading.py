"""Find and build the frozen CLIP of DDR: open_clip tags (hub and cache), local files, or random weights."""
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import build_model_from_openai_state_dict

OFFLINE_FIX = 'Offline? Download the checkpoint elsewhere (e.g. OpenAI {model}.pt) and pass its path: '
PYTHON_FIX = ("DDR(pretrained='/path/to/{model}.pt') or `pretrained: /path/to/{model}.pt` in the option file "
              '(None: random weights, for tests only).')
COMMAND_LINE_FIX = '--pretrained /path/to/{model}.pt (--pretrained none: random weights, for tests only).'


class ClipWeightsError(RuntimeError):
    """CLIP weights could not be found or loaded; the message says where we looked and what to do.

    ``str(error)`` names the Python / option-file fix; ``command_line_message()`` the command-line one; both
    name the checkpoint of ``model_name``, the model asked for.
    """

    def __init__(self, problem: str, model_name: str = 'ViT-B-32') -> None:
        self.problem, self.model_name = problem, model_name
        super().__init__(f'{problem} {OFFLINE_FIX}{PYTHON_FIX}'.format(model=model_name))

    def command_line_message(self) -> str:
        """The message with the fix spelled as the ``--pretrained`` option of the command-line tools."""
        return f'{self.problem} {OFFLINE_FIX}{COMMAND_LINE_FIX}'.format(model=self.model_name)


def load_error_cause(error: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line, without torch's advice to load with
    ``weights_only=False`` (which runs whatever code the file holds)."""
    if isinstance(error, pickle.UnpicklingError):
        return 'not a file of tensors written by torch.save (the safe weights-only loader refuses it)'
    if isinstance(error, EOFError):
        return 'the file is empty or cut short'
    return f"{type(error).__name__}: {str(error).strip().split('. ')[0]}"


@dataclass
class LoadedClip:
    model: torch.nn.Module
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    image_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    description: str


def _square_size(size) -> int:
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f'non-square CLIP input size {tuple(size)} is not supported')
        return int(size[0])
    return int(size)


def _hub_locations(model_name: str, tag: str) -> str:
    cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
    places = []
    if cfg.get('hf_hub'):
        hf_home = os.environ.get('HF_HUB_CACHE') or os.path.join(
            os.environ.get('HF_HOME', os.path.expanduser('~/.cache/huggingface')), 'hub')
        places.append(f"Hugging Face hub repo '{cfg['hf_hub'].rstrip('/')}' (cache: {hf_home})")
    if cfg.get('url'):
        places.append(f"{cfg['url']} (cache: {os.path.expanduser('~/.cache/clip')})")
    return '; '.join(places) or 'open_clip pretrained registry'


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any('/code/' in name for name in archive.namelist())


def _openai_state_dict(path: Path) -> Optional[dict]:
    """State dict of an OpenAI-format file (JIT archive or fp16 state dict), else None."""
    if path.suffix in ('.safetensors', '.npz'):
        return None
    if _is_torchscript_archive(path):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)
            state_dict = dict(torch.jit.load(str(path), map_location='cpu').state_dict())
    else:
        try:
            checkpoint = torch.load(str(path), map_location='cpu', weights_only=True)
        except Exception as error:  # pickle and zip errors of many types
            raise ClipWeightsError(f'{path} cannot be read as CLIP weights: {load_error_cause(error)}.') from error
        state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state_dict, dict):
            raise ClipWeightsError(f'{path} holds {type(checkpoint).__name__}, not a CLIP state dict')
        state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
        # OpenAI releases keep their weights in float16 (clip's convert_weights); open_clip saves fp32/bf16.
        if state_dict.get('text_projection', torch.empty(0)).dtype != torch.float16:
            return None
    for key in ('input_resolution', 'context_length', 'vocab_size'):
        state_dict.pop(key, None)
    return state_dict


def architecture_name(model: torch.nn.Module) -> str:
    """The open_clip model name whose configuration has the shape of the CLIP ``model`` (embedding size, vision
    width, depth, patch or ResNet stages, input size), shortest name first; else the shape itself."""
    visual = model.visual
    if hasattr(visual, 'transformer'):
        kind = 'ViT'
        shape = {'width': visual.conv1.out_channels, 'layers': len(visual.transformer.resblocks),
                 'patch_size': visual.conv1.kernel_size[0]}
    else:
        kind = 'ModifiedResNet'
        shape = {'width': visual.conv1.out_channels * 2,
                 'layers': [len(getattr(visual, f'layer{stage}')) for stage in range(1, 5)]}
    shape['image_size'] = _square_size(visual.image_size)
    embedding = model.text_projection.shape[1]
    for name in sorted(open_clip.list_models(), key=len):
        config = open_clip.get_model_config(name) or {}
        vision = config.get('vision_cfg', {})
        found = {key: list(value) if isinstance(value, (list, tuple)) else value
                 for key, value in ((key, vision.get(key)) for key in shape)}
        if config.get('embed_dim') == embedding and found == shape and not vision.get('timm_model_name'):
            return name
    details = ', '.join(f'{key} {value}' for key, value in shape.items())
    return f'{kind} CLIP ({details}, embedding {embedding}; no open_clip model has this shape)'


def _from_openai_state_dict(state_dict: dict, path: Path) -> LoadedClip:
    model = build_model_from_openai_state_dict(state_dict, quick_gelu=True, cast_dtype=None)
    model = model.float()
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=model.context_length)
    return LoadedClip(model, tokenizer, _square_size(model.visual.image_size),
                      tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD),
                      f'{architecture_name(model)} (OpenAI-format weights from {path})')


def _from_open_clip(model_name: str, pretrained: Optional[str], description: str) -> LoadedClip:
    force_quick_gelu = False
    if pretrained and not os.path.isfile(pretrained):
        force_quick_gelu = bool((open_clip.get_pretrained_cfg(model_name, pretrained) or {}).get('quick_gelu'))
    model = open_clip.create_model(model_name, pretrained=pretrained, force_quick_gelu=force_quick_gelu)
    preprocess = getattr(model.visual, 'preprocess_cfg', {}) or {}
    mean = tuple(preprocess.get('mean', OPENAI_DATASET_MEAN))
    std = tuple(preprocess.get('std', OPENAI_DATASET_STD))
    return LoadedClip(model.float(), open_clip.get_tokenizer(model_name), _square_size(model.visual.image_size),
                      mean, std, description)


def load_clip(model_name: str = 'ViT-B-32', pretrained: Optional[str] = 'openai') -> LoadedClip:
    """Build CLIP ``model_name`` with weights from ``pretrained``.

    ``pretrained`` is an open_clip tag (``'openai'``; fetched through open_clip's hub/cache), a local
    file (OpenAI JIT archive or fp16 state dict: architecture inferred from it, QuickGELU; otherwise an
    open_clip checkpoint for ``model_name``), or None for random weights.
    """
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model '{model_name}'; see open_clip.list_models() "
                         "(e.g. ViT-B-32, ViT-B-16, RN50x16)")
    if pretrained is None:
        return _from_open_clip(model_name, None, f'{model_name} with random weights')
    pretrained = str(pretrained)
    path = Path(os.path.expanduser(pretrained))
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained in tags:
        try:
            return _from_open_clip(model_name, pretrained, f'{model_name} ({pretrained})')
        except Exception as error:  # open_clip/hf_hub raise many types when offline
            raise ClipWeightsError(
                f"could not load CLIP weights '{pretrained}' for model '{model_name}': looked in "
                f'{_hub_locations(model_name, pretrained)}. Cause: {type(error).__name__}: {error}.',
                model_name) from error
    if not path.is_file():
        raise ClipWeightsError(
            f"CLIP weights '{pretrained}' for model '{model_name}' not found: it is neither a local file "
            f"nor an open_clip tag of this model (tags: {', '.join(tags) or 'none'}); a file is an OpenAI .pt "
            'archive or state dict, or an open_clip checkpoint.', model_name)
    try:
        state_dict = _openai_state_dict(path)
        if state_dict is not None:
            return _from_openai_state_dict(state_dict, path)
        return _from_open_clip(model_name, str(path), f'{model_name} from {path}')
    except ClipWeightsError:
        raise
    except Exception as error:
        raise ClipWeightsError(f"could not load CLIP weights from {path} for model '{model_name}': "
                               f'{type(error).__name__}: {error}', model_name) from error
