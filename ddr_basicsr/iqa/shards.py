"""Resumable ``ddr-score`` runs in one process or many (torchrun), merged into one CSV.

A run that writes ``scores.csv`` keeps its work in the folder ``scores.csv.shards/`` beside it:

* ``plan.json``: the settings the scores depend on and the planned rows (path, problem), written by rank 0
  before any process scores;
* ``lock``: locked by rank 0 while the run lasts, so a second run with the same output at the same time is refused;
* ``carried.jsonl``: the records of earlier interrupted runs with the same settings (rank 0 gathers them);
* ``rank-RRRRR-of-WWWWW.partial.jsonl``: one JSON record per image, appended and flushed as each is scored;
  renamed to ``rank-RRRRR-of-WWWWW.jsonl`` (atomic) when the process has scored its share.

The images not yet recorded are split deterministically: process ``rank`` of ``world_size`` takes every
``world_size``-th of them, starting at its rank. Rank 0 waits for every shard, merges the records in plan order
into the CSV and the settings into ``scores.csv.settings.json`` (both written atomically), then removes the
folder. A re-run after a crash finds the records of finished images (and finished shards) and scores the rest;
records with an error are retried. Settings that differ from the folder's are refused.
"""
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.iqa.scoring import ImageScore, ddr_settings, iter_quality_scores
from ddr_basicsr.utils.atomic_files import try_lock, write_text_atomically

SHARDS_SUFFIX = '.shards'
SETTINGS_SUFFIX = '.settings.json'
PLAN_FILE = 'plan.json'
CARRIED_FILE = 'carried.jsonl'
LOCK_FILE = 'lock'
#: What an atomic write adds to a file name at most ('.' + name + '.partial-' + 8 random characters).
TEMPORARY_NAME_EXTRA = '..partial-XXXXXXXX'
#: How long processes wait for each other at the start (rank 0 lists the inputs while the others load CLIP).
START_TIMEOUT = timedelta(hours=2)
#: Seconds between two looks of rank 0 at the other processes' shards (progress, waiting for them).
POLL_SECONDS = 0.5

Rows = List[Tuple[str, str]]


class ShardError(Exception):
    """A shard folder that cannot be used; the message names the folder and the fix."""


@dataclass(frozen=True)
class Launch:
    """This process's place in a run: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def launch_from_environment(environ: Mapping[str, str] = os.environ) -> Launch:
    """The rank, world size and local rank that torchrun (or a SLURM script) sets in RANK, WORLD_SIZE and
    LOCAL_RANK; one process when WORLD_SIZE is not set."""
    return Launch(int(environ.get('RANK', 0)), int(environ.get('WORLD_SIZE', 1)), int(environ.get('LOCAL_RANK', 0)))


def process_device(device: Optional[str], launch: Launch, cuda_available: bool) -> Optional[str]:
    """The device of this process: ``cuda`` (or no ``--device`` with CUDA present) becomes ``cuda:LOCAL_RANK``
    when there are several processes; anything else is kept."""
    if launch.world_size == 1:
        return device
    if device == 'cuda' or (device is None and cuda_available):
        return f'cuda:{launch.local_rank}'
    return device or 'cpu'


def start_process_group(device: str, launch: Launch) -> str:
    """Join the torchrun process group: NCCL when this process scores on a GPU, gloo on a CPU; the backend."""
    import torch
    import torch.distributed as dist

    backend = 'nccl' if device.startswith('cuda') else 'gloo'
    if backend == 'nccl':
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size, timeout=START_TIMEOUT)
    return backend


def gather_problems(problem: str, launch: Launch) -> List[str]:
    """Every process's start-up problem ('' when none), in rank order (all processes take part)."""
    if launch.world_size == 1:
        return [problem]
    import torch.distributed as dist

    problems: List[str] = [''] * launch.world_size
    dist.all_gather_object(problems, problem)
    return problems


def shards_folder(output: str) -> str:
    return output + SHARDS_SUFFIX


def settings_path(output: str) -> str:
    return output + SETTINGS_SUFFIX


def _writable_folder_problem(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f'{folder} is a file, not a folder'
    if not os.access(folder, os.W_OK | os.X_OK):
        return f'cannot write in {folder} (permission denied)'
    return ''


def _name_length_problem(path: str) -> str:
    """Why the file system cannot hold the name of ``path`` or of its temporary file ('' when it can)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    limit = os.pathconf(folder, 'PC_NAME_MAX')
    longest = len(os.fsencode(os.path.basename(path))) + len(TEMPORARY_NAME_EXTRA)
    if longest > limit:
        return f'the name {os.path.basename(path)!r} is too long for this file system ({limit} bytes at most, ' \
               f'with room for {TEMPORARY_NAME_EXTRA!r}); choose a shorter name'
    return ''


def output_problem(output: str, inputs: Mapping[str, str]) -> str:
    """Why ``--output`` cannot be written ('' when it can): checked before anything is scored. ``inputs``: {real
    path: what it is} of every file the run reads. The CSV, its settings file and its shard folder must not be
    one of them, the CSV and settings must not be folders, the names must fit the file system, and the nearest
    existing folder above them must be writable."""
    shards = shards_folder(output)
    if output.endswith(('/', os.sep)):
        return f'--output {output} ends with a separator (a folder); give a file name, e.g. ' \
               f'{os.path.join(output, "scores.csv")}'
    for path in (output, settings_path(output)):
        if os.path.isdir(path):
            return f'--output {output}: {path} is a folder; give a file name, e.g. {os.path.join(path, "scores.csv")}'
    if os.path.exists(shards) and not os.path.isdir(shards):
        return f'--output {output}: {shards} (where the shards go) is a file; move it away'
    for path in (output, settings_path(output), shards):
        if os.path.realpath(path) in inputs:
            return f'--output {output}: {path} is {inputs[os.path.realpath(path)]}; it would be overwritten, ' \
                   'choose another name'
    problem = _writable_folder_problem(output)
    for path in (output, settings_path(output)):
        problem = problem or _name_length_problem(path)
    return f'--output {output}: {problem}' if problem else ''


def lock_run(folder: str) -> IO[str]:
    """Rank 0's lock on the run writing into ``folder`` (``flock`` of ``folder/lock``, released when the returned
    file is closed or the process ends): a second run with the same ``--output`` at the same time is refused. On a
    file system without locks (some network file systems) the run goes on unlocked."""
    os.makedirs(folder, exist_ok=True)
    handle, taken = try_lock(os.path.join(folder, LOCK_FILE))
    if not taken:
        handle.close()
        raise ShardError(f'another ddr-score run is writing it now ({os.path.join(folder, LOCK_FILE)} is locked); '
                         'wait for that run to end, or choose another --output')
    return handle


def run_settings(ddr: DDR, score_options: Mapping[str, object]) -> Dict[str, object]:
    """What the scores of a run depend on (kept in the plan, written to OUTPUT.settings.json): the DDR settings
    (model, prompts, precision, adaptation, distance), the CSV columns and the image options."""
    return {**ddr_settings(ddr), 'columns': list(ddr.degradation_names),
            **{key: score_options.get(key) for key in ('short_side', 'max_pixels', 'max_aspect_ratio')}}


def record_line(result: ImageScore) -> str:
    """One JSON line per scored image (floats as written by repr: the merge reproduces them exactly)."""
    return json.dumps({'path': result.path, 'ddr': result.quality, 'responses': result.responses,
                       'error': result.error}) + '\n'


def _read_jsonl(path: str) -> List[dict]:
    """The records of one ``.jsonl`` file; a line cut short by a crash is skipped."""
    records = []
    with open(path, encoding='utf-8') as stream:
        for line in stream:
            try:
                record = json.loads(line) if line.endswith('\n') else None
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and 'path' in record:
                records.append(record)
    return records


def read_records(folder: str) -> Dict[str, dict]:
    """{path: record} of every ``*.jsonl`` file in ``folder``."""
    return {record['path']: record for name in sorted(os.listdir(folder)) if name.endswith('.jsonl')
            for record in _read_jsonl(os.path.join(folder, name))}


def _as_json(value):
    return json.loads(json.dumps(value))


def prepare_shards(folder: str, rows: Rows, settings: Mapping[str, object]) -> None:
    """Rank 0, before any process scores: check the folder's settings, gather the records of earlier runs into
    ``carried.jsonl`` (dropping error records, retried) and write the plan."""
    plan_path = os.path.join(folder, PLAN_FILE)
    if os.path.isfile(plan_path):
        try:
            with open(plan_path, encoding='utf-8') as stream:
                previous = json.load(stream)['settings']
        except (ValueError, KeyError, TypeError) as error:
            raise ShardError(f'{plan_path} cannot be read ({error}); delete {folder} to start over') from error
        current = _as_json(settings)
        if previous != current:
            changed = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
            raise ShardError(f'{folder} holds the scores of a run with other settings ({", ".join(changed)}); '
                             f'rerun with the same options to resume it, or delete the folder to start over')
    os.makedirs(folder, exist_ok=True)
    planned = {path for path, problem in rows if not problem}
    carried = [record for path, record in read_records(folder).items() if path in planned and not record['error']]
    write_text_atomically(os.path.join(folder, CARRIED_FILE), ''.join(json.dumps(record) + '\n' for record in carried))
    for name in os.listdir(folder):
        if (name.endswith('.jsonl') and name != CARRIED_FILE) or name.startswith('.'):
            os.unlink(os.path.join(folder, name))  # records now carried, and temporary files of a killed write
    write_text_atomically(plan_path, json.dumps({'settings': settings, 'rows': rows}))


def load_plan(folder: str) -> Tuple[Rows, Dict[str, object], Set[str]]:
    """The planned rows, the settings and the paths already scored (carried from earlier runs)."""
    try:
        with open(os.path.join(folder, PLAN_FILE), encoding='utf-8') as stream:
            plan = json.load(stream)
    except FileNotFoundError as error:
        raise ShardError(f'{error.filename} not found: rank 0 writes it before the others start; with several '
                         'machines, --output must be on a file system they all share') from error
    carried = {record['path'] for record in _read_jsonl(os.path.join(folder, CARRIED_FILE))}
    return [tuple(row) for row in plan['rows']], plan['settings'], carried


def pending_indices(rows: Rows, done: Set[str]) -> List[int]:
    """Indices of the planned rows still to score."""
    return [index for index, (path, problem) in enumerate(rows) if not problem and path not in done]


def share_of(pending: Sequence[int], launch: Launch) -> List[int]:
    """The deterministic share of ``launch.rank``: every world_size-th pending row, from its rank on."""
    return list(pending[launch.rank::launch.world_size])


def shard_name(launch: Launch, partial: bool = False) -> str:
    return f'rank-{launch.rank:05d}-of-{launch.world_size:05d}' + ('.partial' if partial else '') + '.jsonl'


def score_shard(ddr: DDR, folder: str, launch: Launch, score_options: Mapping[str, object],
                on_result: Callable[[], None] = lambda: None) -> int:
    """Score this process's share of the plan, appending each record to its partial shard, then rename it to
    the finished shard; the number of images scored. ``score_options``: keyword arguments of
    :func:`~ddr_basicsr.iqa.scoring.iter_quality_scores`."""
    rows, _, done = load_plan(folder)
    share = share_of(pending_indices(rows, done), launch)
    partial = os.path.join(folder, shard_name(launch, partial=True))
    with open(partial, 'a', encoding='utf-8') as stream:
        for result in iter_quality_scores(ddr, [rows[index][0] for index in share], progress=False, **score_options):
            stream.write(record_line(result))
            stream.flush()
            on_result()
    os.replace(partial, os.path.join(folder, shard_name(launch)))
    return len(share)


class ShardProgress:
    """Counts the records the other processes have written so far (for rank 0's progress bar), reading only
    what was appended since the last look."""

    def __init__(self, folder: str, world_size: int):
        self.folder = folder
        self.others = [Launch(rank, world_size) for rank in range(1, world_size)]
        self.offsets = {launch.rank: 0 for launch in self.others}
        self.last_look = 0.0

    def finished(self) -> bool:
        return all(os.path.exists(os.path.join(self.folder, shard_name(launch))) for launch in self.others)

    def new_records(self, force: bool = False) -> int:
        """Records written since the last call (looks at most every POLL_SECONDS unless ``force``)."""
        if not force and time.monotonic() - self.last_look < POLL_SECONDS:
            return 0
        self.last_look = time.monotonic()
        count = 0
        for launch in self.others:
            for name in (shard_name(launch, partial=True), shard_name(launch)):  # the finished one is the renamed
                try:
                    with open(os.path.join(self.folder, name), 'rb') as stream:
                        stream.seek(self.offsets[launch.rank])
                        data = stream.read()
                except FileNotFoundError:
                    continue
                data = data[:data.rfind(b'\n') + 1]
                self.offsets[launch.rank] += len(data)
                count += data.count(b'\n')
                break
        return count

    def wait(self, on_records: Callable[[int], None]) -> None:
        """Wait until every other process has finished its shard, reporting new records as they come."""
        while not self.finished():
            time.sleep(POLL_SECONDS)
            on_records(self.new_records(force=True))
        on_records(self.new_records(force=True))


def merge_shards(folder: str) -> List[ImageScore]:
    """Every planned row in plan order: its record from the shards, or the plan's problem."""
    rows, _, _ = load_plan(folder)
    records = read_records(folder)
    results = []
    for index, (path, problem) in enumerate(rows):
        record = records.get(path) if not problem else {'ddr': None, 'responses': None, 'error': problem}
        if record is None:
            raise ShardError(f'{folder} has no record of {path}; rerun the same command to score it')
        results.append(ImageScore(index, path, record['ddr'], record['responses'], record['error']))
    return results


def finish_run(output: str, csv_text: str, settings: Mapping[str, object]) -> None:
    """Write the merged CSV and its settings file (atomically), then remove the shard folder."""
    write_text_atomically(output, csv_text, errors='surrogateescape')  # file names that are not UTF-8 keep their bytes
    write_text_atomically(settings_path(output), json.dumps(settings, indent=2) + '\n')
    shutil.rmtree(shards_folder(output))
