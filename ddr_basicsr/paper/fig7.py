"""Fig. 7: SRCC between each DDR_d and the mean / standard deviation of VGG features (relu1_1 ... relu5_1).

Per image: DDR_d for the five Table 7 degradations (text-driven, adaptation on) and, for each of the five layers,
the mean and the standard deviation of the activation over channels and positions (torchvision VGG19 with ImageNet
weights, ImageNet normalisation inside; :class:`~ddr_basicsr.losses.vgg_features.VGG19Features`). The paper names
neither the dataset nor the VGG depth: we use LIVE in the Wild (the dataset of its Fig. 4) and VGG19 (the
trunk of the project's feature losses). Writes a heat map per statistic (``fig7.png``) and the SRCC table.
"""
import os
from typing import Mapping, Optional

import numpy as np
import torch

from ddr_basicsr.core.prompts import TABLE7_WORDS
from ddr_basicsr.iqa.evaluation import srcc
from ddr_basicsr.paper import common
from ddr_basicsr.paper.numbers import FIGURE_CLAIMS
from ddr_basicsr.utils.image_io import read_image

VGG_LAYERS = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
STATISTICS = ('mean', 'std')


def choices_note(dataset_name: str) -> str:
    """What the paper leaves open and we chose (in the figure's title and the report)."""
    return (f'VGG19 and {dataset_name} are our choices: the paper names neither the VGG depth nor the dataset')


def plot_heatmaps(table: Mapping[str, Mapping[str, Mapping[str, float]]], path: str, note: str) -> str:
    """One heat map per statistic: rows = degradations, columns = layers, cells = SRCC; ``note`` in the title."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(9, 3.4), layout='constrained')
    axes = figure.subplots(1, len(STATISTICS))
    for axis, statistic in zip(axes, STATISTICS):
        grid = np.array([[table[statistic][name][layer] for layer in VGG_LAYERS] for name in TABLE7_WORDS])
        image = axis.imshow(np.nan_to_num(grid), cmap='coolwarm', vmin=-1, vmax=1)
        axis.set_xticks(range(len(VGG_LAYERS)), VGG_LAYERS, fontsize=7)
        axis.set_yticks(range(len(TABLE7_WORDS)), [f'DDR_{name}' for name in TABLE7_WORDS], fontsize=7)
        for (row, column), value in np.ndenumerate(grid):
            axis.text(column, row, f'{value:.2f}', ha='center', va='center', fontsize=6)
        axis.set_title(f'SRCC with the {statistic} of the features', fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.suptitle(f'SRCC of DDR_d with VGG19 feature statistics (paper Fig. 7); {note}', fontsize=8)
    return common.save_figure(figure, path)


def fig7(roots: Mapping[str, str], output_dir: str, model: common.ModelChoice, dataset_name: str = 'livec',
         vgg_weights: Optional[str] = None, vgg_pretrained: bool = True) -> common.Report:
    """Measure DDR_d and the VGG statistics of ``dataset_name``; write ``fig7.png`` / ``.md`` / ``.csv``.
    ``vgg_pretrained=False`` gives random VGG weights (tests only)."""
    from ddr_basicsr.losses.vgg_features import VGG19Features
    try:
        vgg = VGG19Features(list(VGG_LAYERS), pretrained=vgg_pretrained, weights_path=vgg_weights)
    except FileNotFoundError as error:
        raise common.trunk_weights_error('vgg19', '--vgg-weights', vgg_weights, error) from error
    vgg = vgg.to(model.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    dataset, short_side, choices = common.open_dataset(dataset_name, roots)
    ddr = model.ddr(degradations=list(TABLE7_WORDS))
    ddr_cache, failures = common.score_ddr(ddr, dataset, short_side, choices, output_dir, 'fig7', model)
    source = vgg_weights or ('torchvision ImageNet' if vgg_pretrained else 'random (tests only)')

    def statistics(path: str) -> dict:
        with torch.no_grad():
            features = vgg(read_image(path, short_side)[None].to(vgg.mean.device))
        return {f'{statistic}_{layer}': float(getattr(features[layer], statistic)())
                for layer in VGG_LAYERS for statistic in STATISTICS}

    settings = {'dataset': dataset_name, 'loader': dict(choices), 'vgg': f'vgg19 {source}', 'layers': list(VGG_LAYERS)}
    vgg_cache = common.open_cache(output_dir, 'fig7', f'{dataset_name}-vgg', settings)
    failures += common.fill_cache(dataset, vgg_cache, statistics, f'VGG {dataset_name}')
    table = {statistic: {} for statistic in STATISTICS}
    rows = []
    for name in TABLE7_WORDS:
        responses = common.cached_values(dataset, ddr_cache, lambda record: record['responses'][name])
        for statistic in STATISTICS:
            table[statistic][name] = {layer: srcc(responses, common.cached_values(
                dataset, vgg_cache, lambda record, key=f'{statistic}_{layer}': record[key])) for layer in VGG_LAYERS}
            rows.append([f'DDR_{name}', statistic] + [table[statistic][name][layer] for layer in VGG_LAYERS])
    note = choices_note(dataset_name)
    figure = plot_heatmaps(table, os.path.join(output_dir, 'fig7.png'), note)
    protocol = {
        'dataset': f'{dataset_name} ({len(dataset.items)} images); the paper does not name it',
        **{f'{dataset_name} {key}': value for key, value in choices.items()},
        'DDR': f'text-driven, Table 7 prompts, adaptation on, cosine; CLIP {model.clip_label}',
        'choices': note,
        'VGG': f'torchvision VGG19 features (our choice of depth: the trunk of the project\'s feature losses), '
               f'weights {source}, input RGB in [0, 1] normalised with ImageNet mean/std, '
               'the image as loaded (no crop)',
        'statistics': 'mean and standard deviation over channels and positions of each activation',
    }
    return common.Report('fig7', 'Fig. 7: SRCC between DDR_d and VGG19 feature statistics',
                  f'Paper (no values printed): {FIGURE_CLAIMS["fig7"]} Ours: {note}.',
                  ['DDR', 'statistic', *VGG_LAYERS], rows, protocol, failures=failures, digits=3, figures=[figure])
