"""The seam: the one declared table of BasicSR names that ddr-basicsr rebinds, each acting only for plugin runs.

BasicSR's ``train_pipeline`` looks up four names in its own module at call time; they are the only BasicSR names
the plugin replaces (no ``BaseModel`` method is touched: the plugin's models carry their guarantees themselves,
see :mod:`ddr_basicsr.models.training_guarantees`). Each replacement is a *switch*: it runs the plugin's version
for a plugin run and BasicSR's own function, unchanged, for every other run.

A run is a plugin run when its option file names a model, network, loss or metric that ddr-basicsr registered
(decided by ``parse_options``, the first call of BasicSR's train and test pipelines), or when it is started by
``ddr-train`` / ``ddr-test``. Each target is checked when the plugin attaches: it must exist with the expected
parameters, else :class:`SeamError` names the entry and the installed BasicSR version.

Besides this table, one rebinding is scoped to the plugin's own models: while its Real-ESRGAN variants run their
``__init__`` or ``feed_data`` on a CPU, :mod:`ddr_basicsr.training.real_esrgan_cpu` gives basicsr's ``filter2D``
contiguous input and moves ``.cuda()`` to the CPU, and puts both back when the call returns.
"""
import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Tuple

SUPPORTED_BASICSR = '1.4.2'
STOCK_ATTRIBUTE = '__seam_stock__'


class SeamError(RuntimeError):
    """A BasicSR name of the seam is missing or has another signature than the one the plugin was written for."""


@dataclass(frozen=True)
class SeamEntry:
    """One BasicSR name the plugin rebinds: where it is, the parameters it must have, and why it is replaced."""
    module: str
    name: str
    parameters: Tuple[str, ...]
    plugin_version: str  # 'module:function' of the plugin's replacement
    reason: str

    @property
    def label(self) -> str:
        return f'{self.module}.{self.name}'


_PARSE = ('root_path', 'is_train')
_LOADER = ('dataset', 'dataset_opt', 'num_gpu', 'dist', 'sampler', 'seed')

#: Every BasicSR name the plugin replaces. Loop names of ``basicsr.train`` are also set in a running copy of
#: BasicSR's ``train.py`` (``python basicsr/train.py``, ``python -m basicsr.train``) when a plugin run is parsed.
SEAM = (
    SeamEntry('basicsr.utils.options', 'parse_options', _PARSE, 'ddr_basicsr.host.run_options:route_options',
              'safe YAML, --force_yml without exec/eval, option checks and pre-flight before anything is written'),
    SeamEntry('basicsr.train', 'parse_options', _PARSE, 'ddr_basicsr.host.run_options:route_options',
              'the same, for the name train_pipeline imported'),
    SeamEntry('basicsr.test', 'parse_options', _PARSE, 'ddr_basicsr.host.run_options:route_options',
              'the same, for the name test_pipeline imported'),
    SeamEntry('basicsr.train', 'load_resume_state', ('opt', ), 'ddr_basicsr.host.training_loop:load_resume_state',
              'resume on CPU, --auto_resume under the root folder, damaged states skipped'),
    SeamEntry('basicsr.train', 'EnlargedSampler', ('dataset', 'num_replicas', 'rank', 'ratio'),
              'ddr_basicsr.training.resume:ResumableSampler', 'samples seeded by position; a resumed epoch continues'),
    SeamEntry('basicsr.train', 'build_dataloader', _LOADER, 'ddr_basicsr.host.training_loop:build_dataloader',
              'the training loader of the resumable sampler'),
)
#: Entries of :data:`SEAM` that are also set in a running copy of BasicSR's ``train.py``.
LOOP_ENTRIES = tuple(entry for entry in SEAM if entry.module == 'basicsr.train' and entry.name != 'parse_options')


class RunKind:
    """Whether the run being set up is a plugin run (set by ``parse_options``; read by the switches)."""
    plugin_run = False
    forced = False  # ddr-train / ddr-test: always a plugin run


RUN = RunKind()


def basicsr_version() -> str:
    try:
        from basicsr.version import __version__
    except ImportError:
        return 'unknown'
    return __version__


def _parameter_names(target: Any) -> Tuple[str, ...]:
    signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    return tuple(name for name in signature.parameters if name != 'self')


def _resolve(dotted: str) -> Callable:
    module, name = dotted.split(':')
    return getattr(importlib.import_module(module), name)


def stock_target(entry: SeamEntry, module: Any = None) -> Any:
    """BasicSR's own object behind ``entry`` (checked: present, expected parameters); :class:`SeamError` if not."""
    if module is None:
        module = importlib.import_module(entry.module)
    target = getattr(module, entry.name, None)
    target = getattr(target, STOCK_ATTRIBUTE, target)
    problem = None
    if target is None:
        problem = 'is missing'
    elif _parameter_names(target)[:len(entry.parameters)] != entry.parameters:
        problem = f'has the parameters {_parameter_names(target)}, not {entry.parameters}'
    if problem:
        raise SeamError(f'ddr-basicsr seam entry {entry.label} {problem} in the installed basicsr '
                        f'{basicsr_version()}; ddr-basicsr supports basicsr {SUPPORTED_BASICSR} '
                        f'(pip install basicsr=={SUPPORTED_BASICSR})')
    return target


def switch(entry: SeamEntry, stock: Any) -> Callable:
    """A callable that runs the plugin's version of ``entry`` for plugin runs and ``stock`` otherwise (the plugin's
    version is imported at the first call, never while basicsr itself is being imported)."""
    if entry.name == 'parse_options':  # it decides whether the run is a plugin run: it always gets the stock one
        @functools.wraps(stock, updated=())
        def switched(*args: Any, **kwargs: Any) -> Any:
            return _resolve(entry.plugin_version)(stock, *args, **kwargs)
    else:
        @functools.wraps(stock, updated=())
        def switched(*args: Any, **kwargs: Any) -> Any:
            return (_resolve(entry.plugin_version) if RUN.plugin_run else stock)(*args, **kwargs)
    setattr(switched, STOCK_ATTRIBUTE, stock)
    switched.seam_entry = entry
    return switched


def install(entries: Tuple[SeamEntry, ...] = SEAM) -> None:
    """Check every target first, then put a switch in its place (idempotent)."""
    modules = {entry: importlib.import_module(entry.module) for entry in entries}
    stocks = {entry: stock_target(entry, modules[entry]) for entry in entries}
    for entry in entries:
        if getattr(getattr(modules[entry], entry.name), STOCK_ATTRIBUTE, None) is None:
            setattr(modules[entry], entry.name, switch(entry, stocks[entry]))


def install_loop_entries(module: Any) -> None:
    """Set the loop switches in ``module``, a running copy of BasicSR's ``train.py`` (checked like the others)."""
    import basicsr.train
    for entry in LOOP_ENTRIES:
        stock_target(entry, module)
        setattr(module, entry.name, getattr(basicsr.train, entry.name))
