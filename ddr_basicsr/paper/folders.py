"""Where the reproduction reads datasets and writes results by default, and how many processes decode images (no
heavy imports: ``--help`` stays fast)."""
import os
from typing import Dict

#: Where each dataset is looked for unless ``--root NAME=PATH`` says otherwise (official layouts, see
#: ddr_basicsr/iqa/datasets.py).
DEFAULT_ROOTS: Dict[str, str] = {
    'csiq': 'datasets/CSIQ', 'live': 'datasets/LIVE', 'tid2013': 'datasets/TID2013', 'kadid10k': 'datasets/kadid10k',
    'koniq10k': 'datasets/koniq10k', 'livec': 'datasets/ChallengeDB_release', 'cid2013': 'datasets/CID2013',
    'spaq': 'datasets/SPAQ',
}
DEFAULT_OUTPUT_DIR = 'results/paper'
#: Image-decoding processes of the reproduction (``--workers``, ``ModelChoice.workers``): one per core.
DEFAULT_WORKERS = os.cpu_count() or 1
