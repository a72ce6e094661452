"""The official NAFNet and Restormer GoPro checkpoints that the fine-tunes of ``options/finetune/`` start from.

``fetch`` downloads each missing file into ``experiments/pretrained_models/`` (written whole or not at all) and
verifies every file: against its sha256 where one is published, otherwise (the authors publish none for these
files) by loading it strictly into the network of its option file, which checks every parameter name and shape.
Offline, or when a download fails, it says where to get the file and where to put it.
"""
import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ddr_basicsr.tools.option_file_generator import ARCHS, FINETUNES
from ddr_basicsr.utils.atomic_files import atomic_path

PRETRAINED_FOLDER = os.path.join('experiments', 'pretrained_models')
DRIVE_DOWNLOAD = 'https://drive.usercontent.google.com/download?id={}&export=download&confirm=t'


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, cannot be downloaded or fails its verification; the message names the fix."""


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One official file: where the authors link it, how to download it, and the network it must load into."""
    file_name: str
    label: str
    source: str
    urls: Tuple[str, ...]
    network: Dict[str, object] = field(default_factory=dict)
    param_key: str = 'params'
    sha256: Optional[str] = None
    size: Optional[int] = None


def _network(key: str) -> Dict[str, object]:
    finetune = FINETUNES[key]
    return {**ARCHS[finetune['arch']]['network'], **finetune['network']}


#: The authors publish no checksum or size for these files: they are verified by a strict load.
OFFICIAL_CHECKPOINTS: Tuple[OfficialCheckpoint, ...] = (
    OfficialCheckpoint('NAFNet-GoPro-width64.pth', 'NAFNet-width64 GoPro (megvii-research/NAFNet)',
                       'https://github.com/megvii-research/NAFNet (README, "Results and Pre-trained Models": Google '
                       'Drive or Baidu)', (DRIVE_DOWNLOAD.format('1S0PVRbyTakYY9a82kujgZLbMihfNBLfC'),),
                       _network('nafnet_width64')),
    OfficialCheckpoint('NAFNet-GoPro-width32.pth', 'NAFNet-width32 GoPro (megvii-research/NAFNet)',
                       'https://github.com/megvii-research/NAFNet (README, "Results and Pre-trained Models": Google '
                       'Drive or Baidu)', (DRIVE_DOWNLOAD.format('1Fr2QadtDCEXg6iwWX8OzeZLbHOx2t5Bj'),),
                       _network('nafnet_width32')),
    OfficialCheckpoint('motion_deblurring.pth', 'Restormer motion deblurring (swz30/Restormer)',
                       'https://github.com/swz30/Restormer (Motion_Deblurring/pretrained_models/README.md; release '
                       'v1.0)', ('https://github.com/swz30/Restormer/releases/download/v1.0/motion_deblurring.pth',),
                       _network('restormer')),
)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _build_on_meta(network: Dict[str, object]) -> torch.nn.Module:
    from ddr_basicsr.archs import NAFNet, NAFNetLocal, Restormer
    classes = {'NAFNet': NAFNet, 'NAFNetLocal': NAFNetLocal, 'Restormer': Restormer}
    options = dict(network)
    with torch.device('meta'):  # no random init of tens of millions of parameters: the load fills them
        return classes[options.pop('type')](**options)


def verify(checkpoint: OfficialCheckpoint, path: str) -> str:
    """Check ``path`` (sha256 and size where published, else a strict load); returns what was checked."""
    if checkpoint.size is not None and os.path.getsize(path) != checkpoint.size:
        raise CheckpointError(f'{path}: {os.path.getsize(path)} bytes, expected {checkpoint.size}; delete it and '
                              f'download it again from {checkpoint.source}')
    if checkpoint.sha256 is not None:
        actual = sha256_of(path)
        if actual != checkpoint.sha256:
            raise CheckpointError(f'{path}: sha256 {actual} differs from the published {checkpoint.sha256}; delete '
                                  f'it and download it again from {checkpoint.source}')
        return f'sha256 {actual} matches the published checksum'
    try:
        content = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        state_dict = content[checkpoint.param_key]
        _build_on_meta(checkpoint.network).load_state_dict(state_dict, strict=True, assign=True)
    except Exception as error:  # unpickling, missing key and shape errors of many types
        raise CheckpointError(f'{path} does not load strictly into {checkpoint.network["type"]} '
                              f'({checkpoint.label}): {type(error).__name__}: {str(error)[:300]}. Delete it and '
                              f'download it again from {checkpoint.source}') from error
    return (f'no published checksum; loads strictly into {checkpoint.network["type"]} ({len(state_dict)} tensors); '
            f'sha256 {sha256_of(path)}')


def placement_message(checkpoint: OfficialCheckpoint, folder: str) -> str:
    """Where to get ``checkpoint`` by hand and where to put it."""
    links = ' or '.join(checkpoint.urls)
    return (f'{checkpoint.file_name} ({checkpoint.label}) is missing: download it from {checkpoint.source} '
            f'({links}) and place it at {os.path.join(os.path.abspath(folder), checkpoint.file_name)}, then run '
            'this again to verify it.')


def download(checkpoint: OfficialCheckpoint, target: str, timeout: float = 60.0) -> None:
    """Download ``checkpoint`` to ``target`` from the first of its URLs that answers (written whole or not at all)."""
    errors = []
    for url in checkpoint.urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as temporary:
                with open(temporary, 'wb') as handle:
                    shutil.copyfileobj(response, handle, 1 << 20)
            return
        except OSError as error:  # URLError, timeouts, refused connections
            errors.append(f'{url}: {error}')
    raise CheckpointError('; '.join(errors))


def fetch(folder: str = PRETRAINED_FOLDER, checkpoints: Sequence[OfficialCheckpoint] = OFFICIAL_CHECKPOINTS,
          offline: bool = False) -> Iterator[Tuple[bool, str]]:
    """For each checkpoint: download it when missing (unless ``offline``) and verify it; yields (ok, line)."""
    for checkpoint in checkpoints:
        path = os.path.join(folder, checkpoint.file_name)
        if not os.path.isfile(path):
            if offline:
                yield False, placement_message(checkpoint, folder)
                continue
            try:
                download(checkpoint, path)
            except CheckpointError as error:
                yield False, f'could not download ({error}). {placement_message(checkpoint, folder)}'
                continue
        try:
            yield True, f'{path}: {verify(checkpoint, path)}'
        except CheckpointError as error:
            yield False, str(error)


def run(folder: str = PRETRAINED_FOLDER, names: Optional[Sequence[str]] = None, offline: bool = False) -> Tuple[
        int, List[str]]:
    """(exit status 0 when every chosen checkpoint is in place and verified, else 1; lines to print)."""
    chosen = [item for item in OFFICIAL_CHECKPOINTS if not names or item.file_name in names]
    unknown = sorted(set(names or ()) - {item.file_name for item in OFFICIAL_CHECKPOINTS})
    if unknown:
        known = ', '.join(item.file_name for item in OFFICIAL_CHECKPOINTS)
        return 1, [f'unknown checkpoint(s) {", ".join(unknown)}; known: {known}']
    results = list(fetch(folder, chosen, offline))
    return (0 if all(ok for ok, _ in results) else 1), [line for _, line in results]
