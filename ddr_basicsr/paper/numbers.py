"""The paper's published figures (Wu, Ni et al., NeurIPS 2024), transcribed table by table.

Tables 2, 3, 4, 5 and 6 already live next to the code that uses them (:data:`PAPER_TABLE2` of
:mod:`ddr_basicsr.iqa.descriptor`; ``PAPER_TABLE3`` of :mod:`ddr_basicsr.iqa.evaluation`; ``PAPER_RESULTS`` and
``ABLATIONS`` of :mod:`ddr_basicsr.tools.option_file_generator`) and are re-exported here, so every number the
reproduction prints comes from one place. Figures 1, 2 and 7 are plots without printed values: their captions'
claims are what we compare against.
"""
from typing import Dict, List, Tuple

from ddr_basicsr.iqa.descriptor import PAPER_TABLE2
from ddr_basicsr.iqa.evaluation import PAPER_TABLE3 as TABLE3
from ddr_basicsr.iqa.evaluation import TABLE3_METHODS
from ddr_basicsr.tools.option_file_generator import ABLATIONS as TABLE6_ABLATIONS
from ddr_basicsr.tools.option_file_generator import PAPER_RESULTS as TABLES4_5

__all__ = ['FIGURE_CLAIMS', 'PAPER_TABLE2', 'TABLE1', 'TABLE3', 'TABLE3_COMPUTED', 'TABLE3_METHODS', 'TABLE3_QUOTED',
           'TABLE6_ABLATIONS', 'TABLE8', 'TABLE8_DATASETS', 'TABLES4_5']

#: Table 1: SRCC on the Gaussian-blur images of LIVE; DDR_blur is the pixel-domain response (Eq. 2).
TABLE1: Dict[str, float] = {'ILNIQE': 0.915, 'WaDIQaM': 0.938, 'BIECON': 0.956, 'HOSA': 0.954, 'DBCNN': 0.935,
                            'HyperIQA': 0.926, 'DDR_blur': 0.988}

#: Table 3 methods we run (NIQE: evaluation.niqe_score; PIQE, IL-NIQE: pyiqa); the others are quoted from the paper.
TABLE3_COMPUTED: Tuple[str, ...] = ('niqe', 'piqe', 'ilniqe', 'ddr')
TABLE3_QUOTED: Tuple[str, ...] = tuple(method for method in TABLE3_METHODS if method not in TABLE3_COMPUTED)


#: Table 8 (blind IQA ablation): (degradation set, CLIP backbone, adaptation, SRCC per dataset), in row order.
TABLE8_DATASETS: Tuple[str, ...] = ('csiq', 'tid2013', 'livec', 'koniq10k')
TABLE8: List[Tuple[Tuple[str, ...], str, bool, Dict[str, float]]] = [
    (degradations, backbone, adaptation, dict(zip(TABLE8_DATASETS, values)))
    for degradations, backbone, adaptation, values in [
        (('color',), 'ViT-B-32', True, (0.7896, 0.4872, 0.5178, 0.5745)),
        (('blur',), 'ViT-B-32', True, (0.7555, 0.5061, 0.6282, 0.6028)),
        (('noise',), 'ViT-B-32', True, (0.6937, 0.5022, 0.4954, 0.5804)),
        (('exposure',), 'ViT-B-32', True, (0.7695, 0.5440, 0.6312, 0.5758)),
        (('blur', 'noise', 'exposure'), 'ViT-B-32', True, (0.8029, 0.5841, 0.6660, 0.6390)),
        (('color', 'noise', 'exposure'), 'ViT-B-32', True, (0.8100, 0.5917, 0.6352, 0.6379)),
        (('color', 'blur', 'exposure'), 'ViT-B-32', True, (0.8054, 0.5446, 0.6548, 0.6229)),
        (('color', 'blur', 'noise'), 'ViT-B-32', True, (0.8157, 0.5824, 0.6399, 0.6526)),
        (('color', 'blur', 'noise', 'exposure'), 'ViT-B-32', False, (0.6074, 0.4121, 0.3437, 0.4310)),
        (('color', 'blur', 'noise', 'exposure'), 'ViT-B-16', True, (0.7841, 0.6251, 0.6888, 0.6635)),
        (('color', 'blur', 'noise', 'exposure'), 'ViT-B-32', True, (0.8289, 0.5844, 0.6613, 0.6455)),
        (('color', 'blur', 'noise', 'exposure'), 'RN50x16', True, (0.6500, 0.5464, 0.6607, 0.6125)),
        (('color', 'blur', 'noise', 'exposure'), 'RN50x64', True, (0.6162, 0.5607, 0.6703, 0.6109)),
    ]]

#: What Figures 1, 2 and 7 show (no values are printed in the paper).
FIGURE_CLAIMS: Dict[str, str] = {
    'fig1': ('Fig. 1: the same Gaussian blur changes the LPIPS of different LIVE in the Wild images by different '
             'amounts (content and texture decide the response).'),
    'fig2': ('Fig. 2: on LIVE in the Wild the pixel-domain DDR distribution moves with the blur level; the "optimal" '
             'level and the adaptive text-driven DDR give similar distributions and the better BIQA performance.'),
    'fig7': ('Fig. 7: DDR_color correlates alike with the statistics of every VGG layer; DDR_exposure and DDR_blur '
             'correlate most with relu1_1; DDR_noise and DDR_content with relu1_1 and relu5_1.'),
}
