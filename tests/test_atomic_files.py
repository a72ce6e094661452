"""Files are written whole or not at all."""
from pathlib import Path

import pytest

from ddr_basicsr.atomic_files import atomic_path, write_text_atomically


def test_atomic_path_leaves_the_target_untouched_on_failure(tmp_path):
    target = tmp_path / 'result.csv'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as temporary:
            assert temporary.endswith('.csv') and Path(temporary).parent == tmp_path
            Path(temporary).write_text('half')
            raise RuntimeError('interrupted')
    assert target.read_text() == 'old' and [p.name for p in tmp_path.iterdir()] == ['result.csv']
    write_text_atomically(str(target), 'new')
    assert target.read_text() == 'new' and [p.name for p in tmp_path.iterdir()] == ['result.csv']


def test_atomic_path_creates_the_folder(tmp_path):
    write_text_atomically(tmp_path / 'a' / 'b.md', 'x')
    assert (tmp_path / 'a' / 'b.md').read_text() == 'x'
