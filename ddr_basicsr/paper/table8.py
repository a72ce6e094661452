"""Table 8: the blind-IQA ablation in one run: 13 rows (degradation subsets, adaptation on/off, CLIP backbones)
on CSIQ, TID2013, LIVE in the Wild and KonIQ-10k.

Each row is the DDR of Eq. 7 with the row's degradation set, backbone and adaptation (Eq. 4 on or off), cosine
distance. A backbone's weights are the open_clip tag ``openai`` unless ``weights`` maps its name to a local file.
A row whose weights cannot be loaded is reported (with the fix) and the others still run.
"""
from typing import Dict, Mapping, Optional, Sequence

from ddr_basicsr.core.clip_loading import ClipWeightsError
from ddr_basicsr.iqa.evaluation import srcc
from ddr_basicsr.paper import common
from ddr_basicsr.paper.numbers import TABLE8, TABLE8_DATASETS


def table8(roots: Mapping[str, str], output_dir: str, model: common.ModelChoice,
           weights: Optional[Mapping[str, str]] = None, rows: Optional[Sequence[int]] = None) -> common.Report:
    """Run the rows ``rows`` (1-based; default all 13) of Table 8 and write ``table8.md`` / ``.csv``.

    ``weights``: {backbone: local CLIP file}; other backbones use ``model.pretrained`` for ``model.model`` and the
    open_clip tag 'openai' for the rest.
    """
    weights = dict(weights or {})
    selected = list(rows or range(1, len(TABLE8) + 1))
    bad = [row for row in selected if not 1 <= row <= len(TABLE8)]
    if bad:
        raise ValueError(f'Table 8 has rows 1-{len(TABLE8)}; got {bad}')
    datasets = {name: common.open_dataset(name, roots) for name in TABLE8_DATASETS}
    table, failures, notes, used = [], [], [], {}
    for number in selected:
        degradations, backbone, adaptation, paper = TABLE8[number - 1]
        pretrained = weights.get(backbone, model.pretrained if backbone == model.model else 'openai')
        used[backbone] = pretrained
        label = [number, '{' + ', '.join(degradations) + '}', backbone, 'on' if adaptation else 'off']
        try:
            ddr = model.ddr(model=backbone, pretrained=pretrained, degradations=list(degradations),
                            adaptation=adaptation)
        except ClipWeightsError as error:
            notes.append(f'row {number} not run: {error.problem} Offline? Download the {backbone} checkpoint '
                         f'elsewhere and pass it: --backbone-weights {backbone}=/path/to/{backbone}.pt')
            table.append(label + [None] * (3 * len(TABLE8_DATASETS)))
            continue
        used[backbone] = ddr.clip_description
        if not ddr.clip_description.startswith(f'{backbone} '):
            notes.append(f'row {number} asked for {backbone}; the weights loaded are {ddr.clip_description}')
        cells = []
        for name, (dataset, short_side, choices) in datasets.items():
            cache, failed = common.score_ddr(ddr, dataset, short_side, choices, output_dir, 'table8', model)
            failures += failed
            values = common.cached_values(dataset, cache, lambda record: record['ddr'])
            ours = common.quality_sign(dataset) * srcc(values, list(dataset.scores))
            cells += [ours, paper[name], common.difference(ours, paper[name])]
        table.append(label + cells)
    header = ['Row', 'D', 'Backbone', 'Adaptation'] + [f'{name} {part}' for name in TABLE8_DATASETS
                                                       for part in ('(ours)', '(paper)', '(diff)')]
    protocol: Dict[str, object] = {
        'DDR': 'Eq. 7 (mean of DDR_d over D), Table 7 prompts, cosine distance; adaptation = Eq. 4 on or off',
        'backbone weights': '; '.join(f'{backbone}: {source}' for backbone, source in used.items()),
        'precision': model.precision,
        'SRCC': 'Spearman over every image, sign flipped for DMOS (CSIQ) so agreement with people is positive',
        **{f'{name} loader': '; '.join(f'{key}={value}' for key, value in choices.items())
           for name, (_, _, choices) in datasets.items()},
    }
    return common.Report('table8', 'Table 8: blind-IQA ablation (SRCC)',
                  'Each row\'s SRCC on the four datasets: ours, the paper\'s and the difference (ours - paper).',
                  header, table, protocol, notes, failures=failures)
