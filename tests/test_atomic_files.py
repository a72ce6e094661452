"""Files are written whole or not at all."""
import os
import stat
from pathlib import Path

import pytest

from ddr_basicsr.utils.atomic_files import atomic_path, write_text_atomically


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


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomically_written_files_respect_the_umask(tmp_path, umask, mode):
    saved = os.umask(umask)
    try:
        write_text_atomically(str(tmp_path / 'out.csv'), 'a,b\n')
    finally:
        os.umask(saved)
    assert stat.S_IMODE(os.stat(tmp_path / 'out.csv').st_mode) == mode
