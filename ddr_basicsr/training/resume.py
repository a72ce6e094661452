"""Exact resume: a run continued with ``--auto_resume`` repeats what the uninterrupted run would have done.

BasicSR 1.4.2 restarts the saved epoch from its first batch and keeps no random state. What makes the
continuation exact here (on the CPU bit for bit; on GPUs as far as their kernels are deterministic):

* **Samples are a function of (seed, epoch, position).** :class:`ResumableSampler` (BasicSR's
  ``EnlargedSampler`` order) yields ``(index, sample_seed)`` pairs and :class:`SeededSamples` loads each sample
  with Python's, NumPy's and torch's generators seeded from that seed and put back afterwards. Augmentations
  (crops, flips, rotations) therefore do not depend on worker processes, on worker seeding or on what was
  loaded before, and a resumed epoch skips the batches already trained on instead of replaying them.
* **The training process's generators are saved in every training state** (Python, NumPy, torch, CUDA; per rank)
  and restored on resume; validation runs with the generators put back afterwards, and the data loader draws its
  worker base seed from its own generator, so neither consumes the training's random numbers.
* **What cannot change on resume is checked**: the number of batches per epoch (batch size, dataset size, enlarge
  ratio, world size) — with another value the saved position means other samples.

A failing sample names its files (:class:`UnreadableSampleError`); ``datasets.train.skip_unreadable: true``
loads the next sample instead and logs each skipped file.
"""
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import get_root_logger
from torch.utils.data import Dataset

from ddr_basicsr.training import tell

SAMPLE_SEED_BITS = 63


class UnreadableSampleError(RuntimeError):
    """A training sample could not be loaded; the message names its files."""


class ResumeMismatchError(ValueError):
    """An option changed between the saved training state and the resumed run in a way that cannot be resumed."""


def capture_rng_states() -> Dict[str, Any]:
    """This process's Python, NumPy, torch and CUDA generator states, in a form ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    states = {'python': random.getstate(), 'torch': torch.get_rng_state(),
              'numpy': {'kind': kind, 'keys': torch.from_numpy(keys.astype(np.int64)), 'position': int(position),
                        'has_gauss': int(has_gauss), 'cached_gauss': float(cached_gauss)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]) -> None:
    """Put back generator states captured by :func:`capture_rng_states`."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    numpy_state = states['numpy']
    np.random.set_state((numpy_state['kind'], numpy_state['keys'].numpy().astype(np.uint32), numpy_state['position'],
                         numpy_state['has_gauss'], numpy_state['cached_gauss']))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


@contextmanager
def rng_states_kept() -> Iterator[None]:
    """Run a block and put all generators back as they were before it."""
    saved = capture_rng_states()
    try:
        yield
    finally:
        restore_rng_states(saved)


def sample_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    """The seed of the sample at ``position`` of ``rank``'s share of ``epoch`` (mixed by NumPy's SeedSequence)."""
    state = np.random.SeedSequence([seed, epoch, rank, position]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(64 - SAMPLE_SEED_BITS))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's generators for one sample and put them back afterwards."""
    with rng_states_kept():
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        yield


def sample_files(dataset: Dataset, index: int) -> str:
    """The files behind ``dataset[index]`` as far as BasicSR's datasets expose them (``paths``)."""
    paths = getattr(dataset, 'paths', None)
    try:
        entry = paths[index]
    except (TypeError, IndexError, KeyError):
        return f'sample {index} of {type(dataset).__name__}'
    if isinstance(entry, dict):
        return ', '.join(f'{key}={value}' for key, value in entry.items())
    return str(entry)


class SeededSamples(Dataset):
    """Wraps a training dataset: ``self[(index, seed)]`` loads ``dataset[index]`` under :func:`seeded`."""

    def __init__(self, dataset: Dataset, skip_unreadable: bool = False) -> None:
        self.dataset = dataset
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # paths, opt, ... of the wrapped dataset
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item: Tuple[int, int]) -> Any:
        index, seed = item
        for attempt in range(len(self.dataset)):
            current = (index + attempt) % len(self.dataset)
            try:
                with seeded(seed + attempt):
                    sample = self.dataset[current]
                if sample is None:
                    raise ValueError('the dataset returned None')
                return sample
            except Exception as error:  # decoders raise many types; all of them mean "this sample is unusable"
                files = sample_files(self.dataset, current)
                if not self.skip_unreadable:
                    raise UnreadableSampleError(
                        f'cannot load training sample {current} ({files}): {type(error).__name__}: {error}. '
                        'Replace or remove the file (ddr-train checks every file before training unless '
                        '--skip-data-check), or set datasets.train.skip_unreadable: true to skip such samples'
                    ) from error
                get_root_logger().warning(f'skipped unreadable training sample {current} ({files}): {error}')
        raise UnreadableSampleError(f'no sample of {type(self.dataset).__name__} could be loaded')


class ResumableSampler(EnlargedSampler):
    """BasicSR's ``EnlargedSampler`` order, as ``(index, sample_seed)`` pairs, able to start inside an epoch."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, ratio: int = 1) -> None:
        super().__init__(dataset, num_replicas, rank, ratio)
        self.seed = 0
        self.batch_size = 1
        self.resume_iteration: Optional[int] = None
        self.skip_batches = 0
        TRAINING.sampler = self

    @property
    def batches_per_epoch(self) -> int:
        """Batches of one epoch (the loader drops the last incomplete one)."""
        return self.num_samples // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``; the first epoch after a resume skips the batches the saved run already trained on."""
        super().set_epoch(epoch)
        self.skip_batches = 0
        if self.resume_iteration is not None:
            done = self.resume_iteration - epoch * self.batches_per_epoch
            self.skip_batches = min(max(done, 0), self.batches_per_epoch)
            self.resume_iteration = None

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        indices = list(super().__iter__())
        start = self.skip_batches * self.batch_size
        return iter([(indices[position], sample_seed(self.seed, self.epoch, self.rank, position))
                     for position in range(start, len(indices))])


class TrainingProgress:
    """Where the running training job is: its sampler (epoch, batches per epoch) and a pending stop request."""

    def __init__(self) -> None:
        self.sampler: Optional[ResumableSampler] = None
        self.stop_signal: Optional[str] = None

    def data_geometry(self) -> Dict[str, int]:
        """What fixes the meaning of "position in the epoch"; saved with every training state."""
        sampler = self.sampler
        if sampler is None:
            return {}
        return {'batches_per_epoch': sampler.batches_per_epoch, 'batch_size': sampler.batch_size,
                'samples_per_rank': sampler.num_samples, 'world_size': sampler.num_replicas}


TRAINING = TrainingProgress()


def build_train_dataloader(stock_build_dataloader: Any, dataset: Dataset, dataset_opt: dict, num_gpu: int = 1,
                           dist: bool = False, sampler: Optional[ResumableSampler] = None,
                           seed: Optional[int] = None) -> torch.utils.data.DataLoader:
    """BasicSR's ``build_dataloader`` for the training set, made resumable (see the module docstring) when its
    sampler is a :class:`ResumableSampler` (BasicSR's train pipeline; any other sampler is left as it is)."""
    if not isinstance(sampler, ResumableSampler):
        return stock_build_dataloader(dataset, dataset_opt, num_gpu=num_gpu, dist=dist, sampler=sampler, seed=seed)
    loader = stock_build_dataloader(SeededSamples(dataset, bool(dataset_opt.get('skip_unreadable', False))),
                                    dataset_opt, num_gpu=num_gpu, dist=dist, sampler=sampler, seed=seed)
    loader.generator = torch.Generator().manual_seed(int(seed or 0))
    sampler.seed = int(seed or 0)
    sampler.batch_size = loader.batch_size
    return loader


def gather_rng_states() -> List[Dict[str, Any]]:
    """Every rank's generator states, in rank order (one entry without distributed training)."""
    states = capture_rng_states()
    if not (dist.is_available() and dist.is_initialized()):
        return [states]
    gathered: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, states)
    return gathered


def check_data_geometry(saved: Dict[str, int], state_path: str) -> None:
    """Raise :class:`ResumeMismatchError` when the batches of an epoch are not those of the saved run."""
    current = TRAINING.data_geometry()
    changed = {key: (saved[key], current[key]) for key in saved if key in current and saved[key] != current[key]}
    if changed:
        details = ', '.join(f'{key} {old} -> {new}' for key, (old, new) in changed.items())
        raise ResumeMismatchError(
            f'cannot resume {state_path} exactly: the training data changed ({details}); batch_size_per_gpu, the '
            'number of GPUs, the training images and dataset_enlarge_ratio must stay as they were. To train on with '
            'other settings, start a new experiment with path.pretrain_network_g set to the saved network.')


def restore_progress(resume_state: Dict[str, Any], rank: int, state_path: str) -> None:
    """Restore this rank's generators and point the sampler at the saved iteration (after the model is built)."""
    if 'data_geometry' in resume_state:
        check_data_geometry(resume_state['data_geometry'], state_path)
    rng_states = resume_state.get('rng_states')
    if rng_states:
        restore_rng_states(rng_states[rank] if rank < len(rng_states) else rng_states[0])
    else:
        tell(f'{state_path} was saved without random generator states (by stock BasicSR or an older ddr-basicsr): '
             'training continues, but not exactly as an uninterrupted run would')
    if TRAINING.sampler is not None:
        TRAINING.sampler.resume_iteration = int(resume_state['iter'])
