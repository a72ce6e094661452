"""The Python snippets of the README and docs/iqa.md run as written (with the tiny CLIP standing in for the real
weights), in a folder holding the ``photo.png`` and ``photos/`` they score."""
import re

import pytest

import ddr_basicsr.core.ddr
from ddr_basicsr.core.clip_loading import load_clip
from iqa_examples import write_example_images
from tiny_training import REPO_ROOT

DOCUMENTS = ('README.md', 'docs/iqa.md')
PYTHON_BLOCKS = {document: re.findall(r'```python\n(.*?)```', (REPO_ROOT / document).read_text(encoding='utf-8'),
                                      re.DOTALL) for document in DOCUMENTS}
SNIPPETS = [(document, index) for document, blocks in PYTHON_BLOCKS.items() for index in range(len(blocks))]


def test_the_readme_has_its_python_examples():
    assert len(PYTHON_BLOCKS['README.md']) >= 2
    assert len(PYTHON_BLOCKS['docs/iqa.md']) >= 3  # Python, pyiqa, torchmetrics


@pytest.mark.parametrize('document, index', SNIPPETS)
def test_readme_python_snippet_runs_as_written(document, index, tiny_clip_path, monkeypatch, tmp_path):
    monkeypatch.setattr(ddr_basicsr.core.ddr, 'load_clip', lambda model, pretrained: load_clip(model, tiny_clip_path))
    write_example_images(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[document][index], f'{document} python block {index + 1}', 'exec'), {})
