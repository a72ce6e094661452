"""The Python blocks of the README and of every page of docs/ run as written (with the tiny CLIP standing in for
the real weights), in a folder holding the ``photo.png`` and ``photos/`` they score."""
import re
import sys

import pytest

from ddr_basicsr import DDR
from iqa_examples import write_example_images
from tiny_training import REPO_ROOT

#: The module that defines DDR (found through the class, so the test does not depend on where the module lives).
DDR_MODULE = sys.modules[DDR.__module__]
LOAD_CLIP = DDR_MODULE.load_clip

DOCUMENTS = ('README.md', *sorted(path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / 'docs').glob('*.md')))
PYTHON_BLOCKS = {document: re.findall(r'^```python\n(.*?)^```', (REPO_ROOT / document).read_text(encoding='utf-8'),
                                      re.DOTALL | re.MULTILINE) for document in DOCUMENTS}
SNIPPETS = [(document, index) for document, blocks in PYTHON_BLOCKS.items() for index in range(len(blocks))]


def test_the_docs_have_their_python_examples():
    assert len(PYTHON_BLOCKS['README.md']) >= 1       # the quick start
    assert len(PYTHON_BLOCKS['docs/iqa.md']) >= 3     # Python, pyiqa, torchmetrics
    assert len(PYTHON_BLOCKS['docs/ddr.md']) >= 1     # the DDR module
    assert len(PYTHON_BLOCKS['docs/training.md']) >= 1  # DDR as a loss


@pytest.mark.parametrize('document, index', SNIPPETS)
def test_readme_python_snippet_runs_as_written(document, index, tiny_clip_path, monkeypatch, tmp_path):
    monkeypatch.setattr(DDR_MODULE, 'load_clip', lambda model, pretrained: LOAD_CLIP(model, tiny_clip_path))
    write_example_images(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[document][index], f'{document} python block {index + 1}', 'exec'), {})
