"""Shared fixtures: the tiny random CLIP (OpenAI state-dict format), the conformance vectors, synthetic pairs."""
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(__file__).parent / 'data'
TINY_CLIP_PATH = DATA_DIR / 'tiny_clip_vit_openai_fp16.pt'
REFERENCE_VECTORS_PATH = DATA_DIR / 'ddr_reference_vectors.npz'
ARCH_KEYS_DIR = DATA_DIR / 'archs'


def pytest_configure(config) -> None:
    """One intra-op torch thread in every test process: the models here are tiny, two threads on two cores wait on
    each other (5-30x slower steps were seen on a busy machine), and ``-n 2`` runs two test processes."""
    import torch
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def tiny_clip_path() -> str:
    """Path of a randomly initialised CLIP ViT in OpenAI's format (see tests/data/README.md)."""
    return str(TINY_CLIP_PATH)


@pytest.fixture(scope='session')
def reference_vectors() -> dict:
    with np.load(REFERENCE_VECTORS_PATH) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope='session')
def dataset_root(tmp_path_factory) -> Path:
    """Synthetic deblurring pairs (scale 1), see ``tiny_training.write_paired_dataset``."""
    from tiny_training import write_paired_dataset
    return write_paired_dataset(tmp_path_factory.mktemp('synthetic'))
