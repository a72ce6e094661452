"""Opinion-aware tuning of the learnable degradation prompts on an IQA dataset's MOS, and the cross-dataset protocol.

CLIP is frozen, so each image's patch features are computed once (cached under ``OUTPUT/features/``) and a
tuning step runs only the text encoder: T_d from the context vectors (Eq. 3), the blind-IQA score of each image
from its cached patch features (Eq. 1, 4, 5, 7, patch-averaged as ``DDR.quality``).

Objective: a pairwise logistic (RankNet) loss on the batch-standardised scores, log(1 + exp(-sign(q_i - q_j)
(z_i - z_j))) over the pairs of images with different subjective scores q (oriented so higher = better). It
depends on score order only through differences of z, so it is invariant to the scale and offset of DDR, and it
falls as pairwise order agreement (the quantity SRCC/KRCC measure) rises.

The images are split into training and validation sets at random (``val_fraction``, ``seed``); after every epoch
the validation SRCC is measured and the best vectors are kept; training stops after ``patience`` epochs without
improvement. Progress goes to the terminal, ``tune_prompts.log`` and ``tuning_history.csv``; the state after each
epoch is saved (``tuning_state.pt``) so an interrupted run resumes. The cross-dataset report scores every other
dataset with the hand-written and the tuned prompts.
"""
import csv
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from ddr_basicsr.core.clip_loading import load_error_cause
from ddr_basicsr.core.ddr import DDR, feature_responses, text_directions
from ddr_basicsr.core.learned_prompts import (
    PromptLearner,
    backbone_fingerprint,
    describe_backbone,
    load_prompt_file,
    save_prompt_file,
)
from ddr_basicsr.iqa.datasets import IQADataset
from ddr_basicsr.iqa.evaluation import correlations, format_number, srcc
from ddr_basicsr.iqa.scoring import DECODE_CHUNK, ImageFiles, stack_by_size
from ddr_basicsr.utils.atomic_files import atomic_path, write_text_atomically
from ddr_basicsr.utils.image_io import to_float

OBJECTIVE = 'pairwise logistic ranking loss on batch-standardised scores (RankNet)'
PROMPT_FILE_NAME = 'prompts.pt'


@dataclass
class TuningSettings:
    """Hyper-parameters of ``ddr-tune-prompts``."""
    context: str = 'per_degradation'
    epochs: int = 30
    images_per_step: int = 128
    learning_rate: float = 5e-4
    patience: int = 5
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class PatchFeatures:
    """CLIP features (P, E) of the square patches of N images (image-major), the image of each patch (P,), and
    the images' subjective scores oriented so that higher = better (N,)."""
    features: Tensor
    owners: Tensor
    targets: Tensor

    @property
    def count(self) -> int:
        return self.targets.numel()

    def subset(self, images: Tensor) -> 'PatchFeatures':
        """The features of ``images`` (indices), renumbered 0..len(images)-1 in that order."""
        device = self.owners.device
        renumber = torch.full((self.count,), -1, dtype=torch.long, device=device)
        renumber[images.to(device)] = torch.arange(len(images), device=device)
        keep = renumber[self.owners] >= 0
        return PatchFeatures(self.features[keep], renumber[self.owners[keep]],
                             self.targets[images.to(self.targets.device)])

    def to(self, device: torch.device) -> 'PatchFeatures':
        return PatchFeatures(self.features.to(device), self.owners.to(device), self.targets.to(device))


# ----------------------------------------------------------------------------------------------------------
# features


def _oriented_scores(dataset: IQADataset) -> Tensor:
    scores = torch.tensor(dataset.scores, dtype=torch.float64)
    return scores if dataset.higher_better else -scores


def features_settings(ddr: DDR, dataset: IQADataset, short_side: Optional[int]) -> Dict[str, object]:
    """What the cached patch features of ``dataset`` depend on."""
    return {'clip': backbone_fingerprint(ddr.clip), 'clip_description': ddr.clip_description,
            'precision': ddr.precision, 'dataset': dataset.name, 'root': os.path.abspath(dataset.root),
            'options': {key: str(value) for key, value in dataset.options.items()}, 'short_side': short_side,
            'images': len(dataset.items)}


def _settings_digest(settings: Mapping[str, object]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode('utf-8')).hexdigest()[:10]


def load_own_file(path: str, keys: Sequence[str], when_deleted: str) -> dict:
    """A file this module wrote (feature cache, tuning state); a damaged one is a ValueError naming it and saying
    what happens once it is deleted."""
    try:
        content = torch.load(path, map_location='cpu', weights_only=True)
        cause = '' if isinstance(content, dict) and all(key in content for key in keys) else 'entries are missing'
    except Exception as error:  # pickle and zip errors of many types
        cause = load_error_cause(error)
    if cause:
        raise ValueError(f'{path} is damaged ({cause}); delete it ({when_deleted}) and run again')
    return content


@torch.no_grad()
def extract_features(ddr: DDR, dataset: IQADataset, cache_folder: str, short_side: Optional[int] = None,
                     workers: int = 0, progress: bool = True) -> PatchFeatures:
    """Patch features of every image of ``dataset``, read from / written to ``cache_folder`` (one file per
    dataset and settings, written whole)."""
    settings = features_settings(ddr, dataset, short_side)
    cache_path = os.path.join(cache_folder, f'{dataset.name}-{_settings_digest(settings)}.pt')
    if os.path.isfile(cache_path):
        cached = load_own_file(cache_path, ('settings', 'features', 'owners'), 'its features are computed again')
        if cached.get('settings') == json.loads(json.dumps(settings)):
            return PatchFeatures(cached['features'], cached['owners'], _oriented_scores(dataset))
    loader = DataLoader(ImageFiles(dataset.paths, short_side), batch_size=DECODE_CHUNK, num_workers=workers,
                        collate_fn=stack_by_size)
    features: List[Tensor] = []
    owners: List[Tensor] = []
    with tqdm(total=len(dataset.items), unit='img', desc=f'CLIP features {dataset.name}', disable=not progress,
              file=sys.stderr) as bar:
        for failures, stacks in loader:
            if failures:
                index, error = failures[0]
                raise ValueError(f'{dataset.name}: cannot read {dataset.paths[index]}: {error} (prompt tuning '
                                 'needs every image of the dataset; fix or remove it)')
            for indices, stack in stacks:
                patch_features, count = ddr.patch_features(to_float(stack.to(ddr.device)))
                features.append(patch_features.float().cpu())
                owners.append(torch.tensor(indices).repeat_interleave(count))
                bar.update(len(indices))
    result = PatchFeatures(torch.cat(features), torch.cat(owners), _oriented_scores(dataset))
    with atomic_path(cache_path) as temporary:
        torch.save({'settings': settings, 'features': result.features, 'owners': result.owners}, temporary)
    return result


# ----------------------------------------------------------------------------------------------------------
# scores, objective, split


def image_scores(ddr: DDR, features: PatchFeatures, directions: Tensor) -> Tensor:
    """Blind-IQA DDR (Eq. 7) of each image from its patch features: the mean over its patches of the mean
    over the degradations of DDR_d (as ``DDR.quality``); differentiable with respect to ``directions``."""
    per_patch = feature_responses(features.features, directions, ddr.adaptation, ddr.distance).mean(dim=1)
    sums = torch.zeros(features.count, device=per_patch.device, dtype=per_patch.dtype)
    sums = sums.index_add(0, features.owners, per_patch)
    return sums / torch.bincount(features.owners, minlength=features.count).to(sums)


def ranking_loss(scores: Tensor, targets: Tensor) -> Tensor:
    """RankNet loss on standardised ``scores`` over the pairs whose ``targets`` differ (see the module doc)."""
    z = (scores - scores.mean()) / (scores.std() + 1e-12)
    order = torch.sign(targets[:, None] - targets[None, :]).to(z)
    pairs = order > 0
    if not bool(pairs.any()):
        return z.sum() * 0
    return F.softplus(-(z[:, None] - z[None, :])[pairs]).mean()


def split_indices(count: int, val_fraction: float, seed: int) -> Tuple[Tensor, Tensor]:
    """Random (train, validation) image indices; the validation part has round(val_fraction * count) images."""
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be between 0 and 1 (exclusive), got {val_fraction}')
    validation = int(round(val_fraction * count))
    if validation < 3 or count - validation < 3:
        raise ValueError(f'{count} images cannot be split into training and validation sets of at least 3 images '
                         f'each with val_fraction {val_fraction}')
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[validation:], order[:validation]


def tensor_srcc(scores: Tensor, targets: Tensor) -> float:
    return srcc(scores.detach().cpu().double().tolist(), targets.detach().cpu().double().tolist())


# ----------------------------------------------------------------------------------------------------------
# tuning


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_srcc: float
    val_srcc: float
    seconds: float


class TuningLog:
    """Lines to the terminal (through tqdm) and to ``tune_prompts.log``; the epoch table to ``tuning_history.csv``."""

    def __init__(self, output_dir: str, progress: bool = True):
        self.output_dir = output_dir
        self.progress = progress
        os.makedirs(output_dir, exist_ok=True)

    def __call__(self, message: str) -> None:
        line = f'{time.strftime("%Y-%m-%d %H:%M:%S")} {message}'
        with open(os.path.join(self.output_dir, 'tune_prompts.log'), 'a', encoding='utf-8') as handle:
            handle.write(line + '\n')
        if self.progress:
            tqdm.write(line, file=sys.stderr)

    def write_history(self, history: Sequence[EpochRecord]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(['epoch', 'train_loss', 'train_srcc', 'val_srcc', 'seconds'])
        for record in history:
            writer.writerow([record.epoch, format_number(record.train_loss, 6), format_number(record.train_srcc),
                             format_number(record.val_srcc), f'{record.seconds:.1f}'])
        write_text_atomically(os.path.join(self.output_dir, 'tuning_history.csv'), buffer.getvalue())


def _learner_directions(ddr: DDR, learner: PromptLearner) -> Tensor:
    return text_directions(learner.text_features(ddr.clip), ddr.adaptation)


@torch.no_grad()
def _srcc_of(ddr: DDR, learner: PromptLearner, features: PatchFeatures) -> float:
    return tensor_srcc(image_scores(ddr, features, _learner_directions(ddr, learner)), features.targets)


def tune_prompts(ddr: DDR, train: PatchFeatures, validation: PatchFeatures, settings: TuningSettings,
                 log: TuningLog) -> Tuple[PromptLearner, List[EpochRecord]]:
    """Train the context vectors of ``ddr``'s prompts (CLIP frozen) and return the learner holding the vectors of
    the best validation SRCC, with the epoch history (epoch 0: the hand-written prompts)."""
    learner = PromptLearner(ddr.clip, ddr.tokenizer, ddr.prompts, settings.context).to(ddr.device)
    optimizer = torch.optim.Adam([learner.context], lr=settings.learning_rate)
    train, validation = train.to(ddr.device), validation.to(ddr.device)
    state_path = os.path.join(log.output_dir, 'tuning_state.pt')
    state_key = {**asdict(settings), 'prompts': {name: list(pair) for name, pair in ddr.prompts.items()},
                 'clip': backbone_fingerprint(ddr.clip), 'train_images': train.count,
                 'val_images': validation.count}
    state_keys = ('key', 'context', 'optimizer', 'history', 'best_context', 'best_srcc', 'stale')
    state = load_own_file(state_path, state_keys, 'the tuning starts again from epoch 0') \
        if os.path.isfile(state_path) else None
    if state is not None and state['key'] == json.loads(json.dumps(state_key)):
        with torch.no_grad():
            learner.context.copy_(state['context'])
        optimizer.load_state_dict(state['optimizer'])
        history = [EpochRecord(**record) for record in state['history']]
        best_context, best_srcc, stale = state['best_context'].to(ddr.device), state['best_srcc'], state['stale']
        log(f'resumed after epoch {history[-1].epoch} from {state_path}')
    else:
        start = time.time()
        best_srcc = _srcc_of(ddr, learner, validation)
        history = [EpochRecord(0, math.nan, _srcc_of(ddr, learner, train), best_srcc, time.time() - start)]
        best_context, stale = learner.context.detach().clone(), 0
        log(f'epoch 0 (hand-written prompts): train SRCC {history[0].train_srcc:.4f}, val SRCC {best_srcc:.4f}')
    steps = max(1, math.ceil(train.count / settings.images_per_step))
    for epoch in range(history[-1].epoch + 1, settings.epochs + 1):
        if stale >= settings.patience:
            break
        start, losses = time.time(), []
        order = torch.randperm(train.count, generator=torch.Generator().manual_seed(settings.seed * 100003 + epoch))
        for step in tqdm(range(steps), desc=f'epoch {epoch}/{settings.epochs}', leave=False, disable=not log.progress,
                         file=sys.stderr):
            batch = train.subset(order[step * settings.images_per_step:(step + 1) * settings.images_per_step])
            loss = ranking_loss(image_scores(ddr, batch, _learner_directions(ddr, learner)), batch.targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        record = EpochRecord(epoch, sum(losses) / len(losses), _srcc_of(ddr, learner, train),
                             _srcc_of(ddr, learner, validation), time.time() - start)
        history.append(record)
        improved = record.val_srcc > best_srcc
        if improved:
            best_context, best_srcc, stale = learner.context.detach().clone(), record.val_srcc, 0
        else:
            stale += 1
        log(f'epoch {epoch}: loss {record.train_loss:.5f}, train SRCC {record.train_srcc:.4f}, val SRCC '
            f'{record.val_srcc:.4f}' + (' (best)' if improved else f' (no gain for {stale} epoch(s))'))
        with atomic_path(state_path) as temporary:
            torch.save({'key': state_key, 'context': learner.context.detach().cpu(), 'optimizer':
                        optimizer.state_dict(), 'history': [asdict(item) for item in history],
                        'best_context': best_context.cpu(), 'best_srcc': best_srcc, 'stale': stale}, temporary)
        log.write_history(history)
    if stale >= settings.patience:
        log(f'early stop: no validation gain for {settings.patience} epochs')
    log.write_history(history)
    with torch.no_grad():
        learner.context.copy_(best_context)
    return learner, history


# ----------------------------------------------------------------------------------------------------------
# the whole protocol


@dataclass
class CrossDatasetRow:
    dataset: str
    images: int
    hand_written: Dict[str, float]
    tuned: Dict[str, float]


def compare_prompts(ddr: DDR, learner: PromptLearner, features: PatchFeatures, name: str) -> CrossDatasetRow:
    """SRCC/PLCC/KRCC of the hand-written and the tuned prompts on ``features`` (targets already oriented)."""
    with torch.no_grad():
        tuned_directions = _learner_directions(ddr, learner)
        hand = image_scores(ddr, features, ddr.text_directions).cpu().double().numpy()
        tuned = image_scores(ddr, features, tuned_directions).cpu().double().numpy()
    targets = features.targets.cpu().numpy()
    return CrossDatasetRow(name, features.count, correlations(hand, targets, 1), correlations(tuned, targets, 1))


def format_cross_dataset(rows: Sequence[CrossDatasetRow], header: Sequence[str],
                         tuned_label: str) -> Tuple[str, str]:
    """(Markdown, CSV) of the cross-dataset table: hand-written DDR (opinion-unaware) beside the tuned prompts
    (opinion-aware, ``tuned_label`` names their training set)."""
    lines = ['# Learnable degradation prompts: cross-dataset evaluation', '', *header, '',
             f'Tuned columns: {tuned_label}. Trained on subjective scores, they do not belong in the paper\'s '
             'opinion-unaware Table 3 comparison; the hand-written columns do.', '',
             '| dataset | images | SRCC hand-written (opinion-unaware) | SRCC tuned (opinion-aware) | '
             'PLCC hand-written (opinion-unaware) | PLCC tuned (opinion-aware) |',
             '|---|---|---|---|---|---|']
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['dataset', 'images', 'srcc_hand_written', 'srcc_tuned', 'plcc_hand_written', 'plcc_tuned',
                     'krcc_hand_written', 'krcc_tuned', 'tuned_prompts'])
    for row in rows:
        cells = [format_number(row.hand_written['srcc']), format_number(row.tuned['srcc']),
                 format_number(row.hand_written['plcc']), format_number(row.tuned['plcc'])]
        lines.append(f'| {row.dataset} | {row.images} | ' + ' | '.join(cells) + ' |')
        writer.writerow([row.dataset, row.images, *cells, format_number(row.hand_written['krcc']),
                         format_number(row.tuned['krcc']), tuned_label])
    lines += ['', 'Correlations with the subjective scores, directions handled (positive = agrees with people); '
              'PLCC without nonlinear regression.']
    return '\n'.join(lines) + '\n', buffer.getvalue()


@dataclass
class TuningOutcome:
    prompt_file: str
    history: List[EpochRecord]
    rows: List[CrossDatasetRow]
    markdown: str


def run_protocol(ddr: DDR, train_dataset: IQADataset, eval_datasets: Sequence[IQADataset], output_dir: str,
                 settings: Optional[TuningSettings] = None,
                 short_side_of: Callable[[str], Optional[int]] = lambda name: None, workers: int = 0,
                 progress: bool = True) -> TuningOutcome:
    """Tune on ``train_dataset`` (split into training/validation), write ``OUTPUT/prompts.pt``, and report the
    SRCC of the hand-written and tuned prompts on its validation split and on every dataset of ``eval_datasets``
    (``cross_dataset.md`` / ``.csv``)."""
    settings = settings or TuningSettings()
    if ddr.domain != 'feature':
        raise ValueError('prompt tuning needs the text-driven DDR (domain "feature"), not the pixel domain')
    if ddr.learned_prompts is not None:
        raise ValueError('prompt tuning starts from hand-written prompts (names or a YAML/JSON file), not from a '
                         f'tuned prompt file ({ddr.learned_prompts.path})')
    train_images, val_images = split_indices(len(train_dataset.items), settings.val_fraction, settings.seed)
    log = TuningLog(output_dir, progress)
    feature_folder = os.path.join(output_dir, 'features')
    everything = extract_features(ddr, train_dataset, feature_folder, short_side_of(train_dataset.name), workers,
                                  progress)
    log(f'tuning {settings.context} context vectors of {", ".join(ddr.prompts)} on {train_dataset.name}: '
        f'{len(train_images)} training / {len(val_images)} validation images; CLIP {ddr.clip_description} frozen')
    learner, history = tune_prompts(ddr, everything.subset(train_images), everything.subset(val_images), settings,
                                    log)
    best = max(history, key=lambda record: record.val_srcc)
    training = {'dataset': train_dataset.name, 'root': os.path.abspath(train_dataset.root),
                'subjective_score': train_dataset.score_label,
                'dataset_options': json.dumps({key: str(value) for key, value in train_dataset.options.items()}),
                'images': everything.count, 'train_images': len(train_images), 'val_images': len(val_images),
                'objective': OBJECTIVE, 'best_epoch': best.epoch, 'val_srcc': best.val_srcc,
                'hand_written_val_srcc': history[0].val_srcc, 'epochs_run': history[-1].epoch,
                'adaptation': ddr.adaptation, 'distance': ddr.distance, **asdict(settings)}
    prompt_file = os.path.join(output_dir, PROMPT_FILE_NAME)
    save_prompt_file(prompt_file, learner, ddr.prompts, describe_backbone(ddr.clip, ddr.clip_description), training)
    log(f'wrote {prompt_file} (best epoch {best.epoch}, validation SRCC {best.val_srcc:.4f}; hand-written '
        f'{history[0].val_srcc:.4f})')
    rows = [compare_prompts(ddr, learner, everything.subset(val_images).to(ddr.device),
                            f'{train_dataset.name} (validation split)')]
    for dataset in eval_datasets:
        features = extract_features(ddr, dataset, feature_folder, short_side_of(dataset.name), workers, progress)
        rows.append(compare_prompts(ddr, learner, features.to(ddr.device), dataset.name))
    header = [f'Prompts tuned on {train_dataset.name} ({len(train_images)} training images, best epoch {best.epoch}) '
              f'with {OBJECTIVE}; context: {settings.context}; degradations: {", ".join(ddr.prompts)}; '
              f'CLIP: {ddr.clip_description}. Prompt file: {prompt_file}.']
    markdown, table = format_cross_dataset(rows, header, load_prompt_file(prompt_file).opinion_aware_label)
    write_text_atomically(os.path.join(output_dir, 'cross_dataset.md'), markdown)
    write_text_atomically(os.path.join(output_dir, 'cross_dataset.csv'), table)
    return TuningOutcome(prompt_file, history, rows, markdown)
