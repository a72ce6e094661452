"""Which files ``ddr-score`` and ``DDR.quality`` read: files, folders and glob patterns expanded in order, and the
default size limits they decode them under (standard library only, so ``--help`` of the commands stays fast)."""
import fnmatch
import glob
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

#: Default limits of the decoded image size, checked on the file's header before decoding (``--max-pixels``,
#: ``--max-aspect-ratio``): 100 MP is 1.2 GB as float32; a long strip is scored as about one square patch per
#: unit of its aspect ratio (a 16x60000 PNG of 2.9 MB would be 3751 CLIP inputs, 7.8 GB).
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_ASPECT_RATIO = 32.0
#: Extensions collected when a folder is scanned (compared case-insensitively).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def is_image_file(path: str) -> bool:
    """True when ``path`` has one of :data:`IMAGE_EXTENSIONS`."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _has_wildcard(text: str) -> bool:
    return any(char in text for char in '*?[')


def _walk_files(top: str, recursive: bool, unreadable: Optional[list] = None) -> Iterator[Tuple[str, str]]:
    """(path, real path) of the files in folder ``top`` (and its sub-folders when ``recursive``), hidden names
    skipped. Symlinked folders are followed, but each real folder is entered once, so a symlink loop ends. A folder
    that cannot be listed is added to ``unreadable`` as a (path, real path, problem) row."""
    visited = set()
    pending = [(top, os.path.realpath(top))]
    while pending:
        folder, real_folder = pending.pop()
        if real_folder in visited:
            continue
        visited.add(real_folder)
        try:
            entries = list(os.scandir(folder))
        except OSError as error:  # unreadable, or vanished while walking
            if unreadable is not None:
                unreadable.append((folder, real_folder, f'cannot list this folder ({error.strerror}); its images '
                                                        'are not scored'))
            continue
        for entry in entries:
            if entry.name.startswith('.'):
                continue
            try:
                real = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real_folder, entry.name)
                if entry.is_dir():  # False for a symlink loop, which is skipped
                    if recursive:
                        pending.append((entry.path, real))
                elif entry.is_file():
                    yield entry.path, real
            except OSError:
                continue


def _matches(names: Sequence[str], parts: Sequence[str]) -> bool:
    """Glob match of path components ``names`` against pattern components ``parts`` ('**': any number of them)."""
    if not parts:
        return not names
    if parts[0] == '**':
        return any(_matches(names[start:], parts[1:]) for start in range(len(names) + 1))
    return bool(names) and fnmatch.fnmatchcase(names[0], parts[0]) and _matches(names[1:], parts[1:])


def _glob_files(pattern: str, unreadable: Optional[list] = None) -> Iterator[Tuple[str, str]]:
    """(path, real path) of the files matching ``pattern``; a recursive '**' pattern is matched while walking
    its fixed leading folder with :func:`_walk_files` (glob.glob follows symlink loops without end)."""
    parts = pattern.split(os.sep)
    if '**' not in parts:
        yield from ((path, os.path.realpath(path)) for path in glob.glob(pattern) if os.path.isfile(path))
        return
    fixed = next(index for index, part in enumerate(parts) if _has_wildcard(part))
    top = os.sep.join(parts[:fixed]) or ('.' if fixed == 0 else os.sep)
    for path, real in _walk_files(top, True, unreadable):
        names = os.path.relpath(path, top).split(os.sep)
        if _matches(names, parts[fixed:]):
            yield (os.path.relpath(path) if fixed == 0 else path), real


def collect_input_rows(inputs: Sequence[str], recursive: bool = False) -> List[Tuple[str, str, str]]:
    """Expand files, folders and glob patterns into (path, real path, problem) rows in the given order.

    Folders give their image files (:data:`~ddr_basicsr.utils.image_io.IMAGE_EXTENSIONS`, hidden names skipped),
    sorted, including sub-folders when ``recursive`` (symlinked folders are followed, each real folder once).
    Explicit files are kept whatever their extension. A file reached twice (the same real path: repeated
    entries, symlinks) is listed once, where it first appears. ``problem`` is empty, or says why the row
    cannot be scored (a pattern matching nothing, an empty folder, a folder that cannot be listed).
    """
    rows: List[Tuple[str, str, str]] = []
    for item in inputs:
        unreadable: List[Tuple[str, str, str]] = []
        if os.path.isdir(item):
            found = sorted((path, real) for path, real in _walk_files(item, recursive, unreadable)
                           if is_image_file(path))
            rows.extend((path, real, '') for path, real in found)
            rows.extend(unreadable)
            if not found and not unreadable:
                problem = 'no image file in this folder' + ('' if recursive else ' (try --recursive)')
                rows.append((item, os.path.realpath(item), problem))
        elif _has_wildcard(item) and not os.path.exists(item):
            found = sorted(_glob_files(item, unreadable))
            rows.extend((path, real, '') for path, real in found)
            rows.extend(unreadable)
            if not found and not unreadable:
                rows.append((item, item, 'no file matches this pattern'))
        else:
            rows.append((item, os.path.realpath(item), ''))
    seen = set()
    unique = []
    for row in rows:
        if row[1] not in seen:
            seen.add(row[1])
            unique.append(row)
    return unique


def collect_inputs(inputs: Sequence[str], recursive: bool = False) -> List[Tuple[str, str]]:
    """(path, problem) rows of :func:`collect_input_rows`."""
    return [(path, problem) for path, _, problem in collect_input_rows(inputs, recursive)]


def read_path_list(path: str) -> List[str]:
    """The entries of a ``--files-from`` file: one path (or folder, or glob pattern) a line, UTF-8 (names that are
    not are kept as their bytes); line endings stripped, empty lines skipped. A NUL byte (a binary file,
    ``find -print0``) is a ValueError."""
    with open(path, encoding='utf-8', errors='surrogateescape') as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines, 1):
        if '\0' in line:
            raise ValueError(f'line {number} holds a NUL byte; expected one path a line (a list from find -print0? '
                             'use find -print)')
    return [line for line in lines if line]


def image_files(folder: Union[str, os.PathLike]) -> List[str]:
    """The image files of ``folder`` (not its sub-folders) in the order ``ddr-score`` and ``DDR.quality`` score
    them (sorted; :data:`~ddr_basicsr.utils.image_io.IMAGE_EXTENSIONS`, hidden names skipped)."""
    folder = os.fspath(folder)
    rows = collect_input_rows([folder])
    if rows[0][2]:
        raise ValueError(f'{folder}: no image file in this folder (sub-folders are not scanned: pass them too)')
    return [path for path, _, _ in rows]
