"""Files written whole or not at all: write to a temporary file beside the target, then rename. And a lock file
that keeps two processes from writing the same output at once."""
import fcntl
import os
import stat
import tempfile
from contextlib import ExitStack, contextmanager
from typing import IO, Iterator, List, Sequence, Tuple


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path in the folder of ``path`` with the same extension (image writers choose the
    format by it) and the mode of the file it replaces; it is renamed to ``path`` when the block succeeds and
    removed when it fails."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, extension = os.path.splitext(os.path.basename(path))
    handle, temporary = tempfile.mkstemp(prefix=f'.{stem}.partial-', suffix=extension, dir=folder)
    os.close(handle)
    try:  # mkstemp makes 0600: a replaced file keeps its mode, a new one gets the mode open() would give
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~current_umask()
    os.chmod(temporary, mode)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


@contextmanager
def atomic_paths(paths: Sequence[str]) -> Iterator[List[str]]:
    """:func:`atomic_path` for several files that belong together: no target is replaced before every
    temporary file is written (they are renamed one after the other when the block succeeds)."""
    with ExitStack() as stack:
        yield [stack.enter_context(atomic_path(path)) for path in paths]


def write_text_atomically(path: str, text: str, errors: str = 'strict') -> None:
    """Write ``text`` (UTF-8, encoding ``errors`` as for :func:`open`) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temporary:
        with open(temporary, 'w', encoding='utf-8', errors=errors, newline='') as stream:
            stream.write(text)


def try_lock(path: str) -> Tuple[IO[str], bool]:
    """Open ``path`` (created if needed) and try an exclusive ``flock`` on it without waiting: ``(file, False)``
    when another process holds it. The lock lasts until the file is closed or the process ends (killed too). On a
    file system without locks (some network file systems) it counts as taken."""
    handle = open(path, 'a', encoding='utf-8')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return handle, False
    except OSError:  # ENOLCK, EOPNOTSUPP: locks are not supported here
        pass
    return handle, True
