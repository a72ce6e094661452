"""Option checks that the models run themselves when they build (also run by the pre-flight of
:mod:`ddr_basicsr.host.options`)."""
import difflib
import inspect
from typing import Callable, Iterable, Mapping


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match of ``word`` among ``choices``, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ''


def check_keyword_options(section: str, target: Callable, options: Mapping) -> None:
    """Every key of ``options`` but ``type`` is a keyword argument of ``target`` (a class or function),
    unless it takes ``**kwargs``; a ValueError names the key, a close match and the accepted keys."""
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [name for name in parameters if name != 'self']
    for key in options:
        if key != 'type' and key not in accepted:
            raise ValueError(f"{section}.{key}: {getattr(target, '__name__', target)} has no option '{key}'"
                             f"{did_you_mean(key, accepted)}; its options: {', '.join(accepted)}")


def check_numeric_strings(section: str, values: Mapping) -> None:
    """Numbers that YAML 1.1 reads as text (``lr: 1e-4``, also from ``--force_yml``), which would fail only once
    the model is built; the TypeError names the fix."""
    for name, value in values.items():
        if name == 'type' or not isinstance(value, str):
            continue
        try:
            float(value)
        except ValueError:
            continue
        raise TypeError(f"{section}.{name} is the string {value!r}: YAML 1.1 reads '1e-4' as text; write "
                        f'!!float {value} or a mantissa with a dot (1.0e-4), in the file or in --force_yml')
