"""The README's Python snippets run as written (with the tiny CLIP standing in for the real weights)."""
import re

import pytest

import ddr_basicsr.ddr
from ddr_basicsr.clip_loading import load_clip
from tiny_training import REPO_ROOT

PYTHON_BLOCKS = re.findall(r'```python\n(.*?)```', (REPO_ROOT / 'README.md').read_text(encoding='utf-8'), re.DOTALL)


def test_the_readme_has_its_python_examples():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize('index', range(len(PYTHON_BLOCKS)))
def test_readme_python_snippet_runs_as_written(index, tiny_clip_path, monkeypatch):
    monkeypatch.setattr(ddr_basicsr.ddr, 'load_clip', lambda model, pretrained: load_clip(model, tiny_clip_path))
    exec(compile(PYTHON_BLOCKS[index], f'README.md python block {index + 1}', 'exec'), {})
