"""Fig. 2: distributions of DDR on LIVE in the Wild at low / optimal / high pixel-domain blur and for the
adaptive text-driven DDR (Eq. 3-5, the blind-IQA degradation set of Eq. 7).

The pixel-domain DDR_blur is swept over the ω_d grid of Table 1 (:data:`~ddr_basicsr.paper.table1.BLUR_SIGMAS`):
"low" is its smallest σ, "high" its largest and "optimal" the σ with the best SRCC against the MOS (in-sample; the
held-out choice of :func:`~ddr_basicsr.paper.table1.held_out_levels` is reported beside it). The panels compare a
pixel-domain DDR with one degradation, D = {blur}, and the text-driven DDR with four, D = {color, noise, blur,
exposure}; the figure's title says so. Writes a histogram per DDR (``fig2.png``) and their statistics with the
SRCC (``fig2.md`` / ``.csv``).
"""
import os
from typing import Mapping, Sequence

import numpy as np

from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.iqa.evaluation import srcc
from ddr_basicsr.paper import common
from ddr_basicsr.paper.numbers import FIGURE_CLAIMS
from ddr_basicsr.paper.table1 import BLUR_SIGMAS, HELD_OUT_PROTOCOL, best_level, held_out_levels, sweep_pixel_blur

HISTOGRAM_BINS = 30
#: The degradation sets the panels compare (the figure's title).
COMPARED_SETS = (f'pixel-domain DDR with D = {{blur}} (low / optimal / high σ) vs text-driven adaptive DDR with '
                 f'D = {{{", ".join(BIQA_DEGRADATIONS)}}}')


def plot_distributions(distributions: Mapping[str, Sequence[float]], titles: Mapping[str, str], path: str) -> str:
    """One histogram per entry of ``distributions``, side by side, saved as PNG."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(3.2 * len(distributions), 2.8), layout='constrained')
    axes = figure.subplots(1, len(distributions), squeeze=False)[0]
    for axis, (label, values) in zip(axes, distributions.items()):
        axis.hist(values, bins=HISTOGRAM_BINS, color='tab:blue' if label != 'adaptive' else 'tab:orange')
        axis.set_title(titles[label], fontsize=8)
        axis.set_xlabel('DDR', fontsize=8)
    axes[0].set_ylabel('images', fontsize=8)
    figure.suptitle(f'Distribution of DDR on LIVE in the Wild (paper Fig. 2)\n{COMPARED_SETS}', fontsize=9)
    return common.save_figure(figure, path)


def fig2(roots: Mapping[str, str], output_dir: str, model: common.ModelChoice,
         sigmas: Sequence[float] = BLUR_SIGMAS) -> common.Report:
    """Score LIVE in the Wild at every σ and with the text-driven DDR; write ``fig2.png`` / ``.md`` / ``.csv``."""
    livec, short_side, choices = common.open_dataset('livec', roots)
    values, failures = sweep_pixel_blur(livec, short_side, choices, output_dir, 'fig2', model, sigmas)
    adaptive = model.ddr(degradations=list(BIQA_DEGRADATIONS))
    cache, failed = common.score_ddr(adaptive, livec, short_side, choices, output_dir, 'fig2', model)
    failures += failed
    sign = common.quality_sign(livec)
    correlations = {sigma: sign * srcc(values[sigma], list(livec.scores)) for sigma in sigmas}
    levels = {'low': min(sigmas), 'optimal': best_level(correlations), 'high': max(sigmas)}
    distributions = {label: [value for value in values[sigma] if value is not None] for label, sigma in levels.items()}
    adaptive_values = common.cached_values(livec, cache, lambda record: record['ddr'])
    distributions['adaptive'] = [value for value in adaptive_values if value is not None]
    correlation = {**{label: correlations[sigma] for label, sigma in levels.items()},
                   'adaptive': sign * srcc(adaptive_values, list(livec.scores))}
    setting = {**{label: f'pixel-domain DDR_blur, σ = {sigma:g} px' for label, sigma in levels.items()},
               'optimal': f'pixel-domain DDR_blur, σ = {levels["optimal"]:g} px, chosen in-sample',
               'adaptive': f'text-driven DDR, D = {{{", ".join(BIQA_DEGRADATIONS)}}}, adaptation on (Eq. 7)'}
    short = {**{label: f'pixel blur, σ = {sigma:g} px' for label, sigma in levels.items()},
             'optimal': f'pixel blur, σ = {levels["optimal"]:g} px (in-sample)',
             'adaptive': 'text-driven, Eq. 7'}
    titles = {label: f'{label}: {short[label]}\nSRCC {correlation[label]:.3f}' for label in distributions}
    figure = plot_distributions(distributions, titles, os.path.join(output_dir, 'fig2.png'))
    rows = [[label, setting[label], float(np.mean(found)) if found else None, float(np.std(found)) if found else None,
             correlation[label]] for label, found in distributions.items()]
    rows += [[f'all σ: {sigma:g} px', 'pixel-domain DDR_blur', None, None, correlations[sigma]] for sigma in sigmas]
    rows += [[f'held-out optimal ({held.chosen_on} → {held.scored_on})', f'pixel-domain DDR_blur, {held.label}', None,
              None, held.srcc] for held in held_out_levels(values, list(livec.scores), sign)]
    protocol = {
        'dataset': f'LIVE in the Wild ({len(livec.items)} images, the 7 training images dropped)',
        **{f'LIVE in the Wild {key}': value for key, value in choices.items()},
        'ω_d grid (σ, px)': ', '.join(f'{sigma:g}' for sigma in sigmas),
        'levels': 'low = smallest σ, high = largest σ, optimal = σ with the best SRCC against the MOS on all the '
                  'images (in-sample, optimistic)',
        'held-out': HELD_OUT_PROTOCOL,
        'compared': COMPARED_SETS,
        'CLIP': model.clip_label, 'precision': model.precision,
        'histogram': f'{HISTOGRAM_BINS} bins per panel, each panel on its own DDR axis',
    }
    return common.Report('fig2', f'Fig. 2: distribution of DDR on LIVE in the Wild: {COMPARED_SETS}',
                  f'Paper (no values printed): {FIGURE_CLAIMS["fig2"]} Ours: the statistics of each distribution '
                  'and its SRCC with the MOS.', ['DDR', 'setting', 'mean', 'std', 'SRCC'], rows, protocol,
                  failures=failures, digits=6, figures=[figure])
