"""Table 2: SRCC between DDR_d and image characteristics on CSIQ, per degradation type.

DDR_d (text-driven, Table 7 prompts, adaptation on) of every CSIQ distorted image against four characteristics:
complexity (IC9600's ICNet, the paper's [25]; :mod:`ddr_basicsr.paper.icnet`), colorfulness (Hasler and
Süsstrunk, the paper's [23]; :func:`ddr_basicsr.iqa.descriptor.colorfulness`), sharpness (CPBD, [44], as the
reference code computes it; :mod:`ddr_basicsr.iqa.cpbd`) and quality (CSIQ's DMOS, negated so that higher is
better, as the paper's "MOS").
"""
from typing import Mapping, Optional

from ddr_basicsr.core.prompts import TABLE7_WORDS
from ddr_basicsr.iqa.cpbd import cpbd
from ddr_basicsr.iqa.descriptor import colorfulness
from ddr_basicsr.iqa.evaluation import srcc
from ddr_basicsr.paper import common
from ddr_basicsr.paper.icnet import ICNet, complexity, default_icnet_path, load_icnet
from ddr_basicsr.paper.numbers import PAPER_TABLE2
from ddr_basicsr.utils.image_io import read_image

CHARACTERISTICS = ('complexity', 'colorfulness', 'sharpness', 'quality')


def table2(roots: Mapping[str, str], output_dir: str, model: common.ModelChoice, icnet_weights: Optional[str] = None,
           random_icnet_for_tests: Optional[ICNet] = None) -> common.Report:
    """Measure DDR_d and the characteristics of CSIQ's images and write ``table2.md`` / ``.csv``.

    ``random_icnet_for_tests``: a randomly initialised :class:`ICNet` used instead of the authors' weights (tests
    only: its complexity is meaningless)."""
    icnet = random_icnet_for_tests or load_icnet(icnet_weights, model.device)
    csiq, short_side, choices = common.open_dataset('csiq', roots)
    ddr = model.ddr(degradations=list(TABLE7_WORDS))
    ddr_cache, failures = common.score_ddr(ddr, csiq, short_side, choices, output_dir, 'table2', model)
    icnet_source = ('random weights (tests only)' if random_icnet_for_tests
                    else str(icnet_weights or default_icnet_path()))
    settings = {'dataset': 'csiq', 'loader': dict(choices), 'icnet': icnet_source,
                'cpbd': 'python-cpbd (Canny blocks, Sobel widths)', 'colorfulness': 'Hasler-Susstrunk'}

    def characteristics(path: str) -> dict:
        image = read_image(path)
        rgb = image.permute(1, 2, 0).numpy() * 255.0
        return {'complexity': complexity(icnet, image), 'colorfulness': colorfulness(rgb), 'sharpness': cpbd(rgb)}

    attribute_cache = common.open_cache(output_dir, 'table2', 'csiq-characteristics', settings)
    failures += common.fill_cache(csiq, attribute_cache, characteristics, 'characteristics csiq')
    measured = {name: common.cached_values(csiq, attribute_cache, lambda record, name=name: record[name])
                for name in CHARACTERISTICS[:3]}
    measured['quality'] = [common.quality_sign(csiq) * score for score in csiq.scores]
    rows = []
    for degradation in TABLE7_WORDS:
        responses = common.cached_values(csiq, ddr_cache, lambda record: record['responses'][degradation])
        row = [degradation]
        for name in CHARACTERISTICS:
            ours, paper = srcc(responses, measured[name]), PAPER_TABLE2[degradation][name]
            row += [ours, paper, common.difference(ours, paper)]
        rows.append(row)
    header = ['Degradation'] + [f'{name.capitalize()} {part}' for name in CHARACTERISTICS
                                for part in ('(ours)', '(paper)', '(diff)')]
    protocol = {
        'dataset': f'CSIQ, {len(csiq.items)} distorted images',
        **{f'CSIQ {key}': value for key, value in choices.items()},
        'DDR': f'text-driven, Table 7 prompts {", ".join(TABLE7_WORDS)}, adaptation on, cosine; CLIP '
               f'{model.clip_label}, {model.precision}',
        'complexity': f'IC9600 ICNet score in [0, 1]; image resized to {icnet.input_size}x{icnet.input_size} '
                      f'(bilinear, antialiased), ImageNet normalisation; weights: {icnet_source}',
        'colorfulness': 'Hasler & Süsstrunk M on 0-255 RGB (ddr_basicsr.iqa.descriptor.colorfulness)',
        'sharpness': 'CPBD as python-cpbd (the Python port of the reference MATLAB code) computes it: Canny edges '
                     'pick the 64-px edge blocks, Sobel vertical edges with Octave\'s threshold and thinning the '
                     'pixels whose Marziliano width is measured (ddr_basicsr.iqa.cpbd)',
        'quality': f'{csiq.score_label} x {common.quality_sign(csiq)} (higher = better)',
        'SRCC': 'Spearman over the images with both values',
    }
    return common.Report('table2', 'Table 2: SRCC between DDR_d and image characteristics (CSIQ)',
                  'SRCC of DDR per degradation type with each characteristic; ours, the paper\'s and the difference '
                  '(ours - paper).', header, rows, protocol, failures=failures, digits=3)
