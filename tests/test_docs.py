"""The command lines, file names, YAML blocks and links of the README and of every page of docs/ are real.

- Every command in a ```bash block (and every one written inline in the prose) that starts ``ddr-train``,
  ``ddr-test``, ``ddr-score``, ``ddr-tune-prompts``, ``python scripts/<name>.py`` or ``python -m <module>``
  (also the ``-m <module>`` that ``torchrun`` starts) names
  a program that exists, and its ``--help`` (for a program with sub-commands, the sub-command's) lists every flag
  the docs give it. Programs are run through their command line only (console scripts, ``python scripts/x.py``,
  ``python -m``), never imported, so the check follows the package however its modules are arranged.
- ``bash scripts/<name>.sh``, ``scripts/<name>.py`` and ``options/...yml`` named anywhere in the docs exist (brace
  forms such as ``options/{nafnet,restormer}_gopro_ddr.yml`` are expanded; ``*`` patterns must match a file).
- Every ```yaml block parses.
- Every relative link points to an existing file and, with ``#anchor``, to one of its headings.

The Python blocks are run by ``tests/test_readme.py``."""
import functools
import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Tuple

import pytest
import yaml

from tiny_training import REPO_ROOT

DOCUMENTS = ('README.md', *sorted(path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / 'docs').glob('*.md')))
TEXTS = {document: (REPO_ROOT / document).read_text(encoding='utf-8') for document in DOCUMENTS}
FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.DOTALL | re.MULTILINE)
CONSOLE_SCRIPTS = ('ddr-train', 'ddr-test', 'ddr-score', 'ddr-tune-prompts')
#: Launchers whose own flags are not checked; the module they start (``-m X``) is.
LAUNCHER_MODULES = ('torch.distributed.run', 'torch.distributed.launch')
COMMAND_ENDS = (';', '|', '||', '&&', '&', 'then', 'do')


def blocks(language: str) -> List[Tuple[str, int, str]]:
    """(document, index, text) of each fenced block in ``language``."""
    return [(document, index, body) for document, text in TEXTS.items()
            for index, body in enumerate(body for lang, body in FENCE.findall(text) if lang == language)]


class Command(NamedTuple):
    program: Tuple[str, ...]   # ('ddr-score',), ('python', 'scripts/reproduce.py'), ('python', '-m', 'basicsr.train')
    arguments: Tuple[str, ...]
    where: str


def command_lines(text: str) -> List[str]:
    """The lines of a bash block, continuation lines joined, comment lines dropped."""
    lines = text.replace('\\\n', ' ').splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith('#')]


def commands_of(tokens: List[str], where: str) -> List[Command]:
    """The checked commands among ``tokens`` (one shell line)."""
    found = []
    for position, token in enumerate(tokens):
        rest = tokens[position + 1:]
        end = next((index for index, word in enumerate(rest) if word in COMMAND_ENDS or word.endswith(';')),
                   len(rest))
        rest = rest[:end]
        if token in CONSOLE_SCRIPTS:
            found.append(Command((token,), tuple(rest), where))
        elif token in ('python', 'python3') and rest and re.fullmatch(r'scripts/[\w-]+\.py', rest[0]):
            found.append(Command(('python', rest[0]), tuple(rest[1:]), where))
        elif token in ('python', 'python3', 'torchrun') and '-m' in rest:
            start = rest.index('-m')
            if token != 'torchrun' and start != 0:
                continue   # python -c ..., python basicsr/train.py ...: not a module run
            module = rest[start + 1] if start + 1 < len(rest) else ''
            if module in LAUNCHER_MODULES or not re.fullmatch(r'\w+(\.\w+)*', module):
                continue   # the command after the launcher is found at its own -m (or is a file path)
            found.append(Command(('python', '-m', module), tuple(rest[start + 2:]), where))
    return found


def documented_commands() -> List[Command]:
    """The commands of every bash block, then those written inline in the prose (`ddr-score --workers N`), and the
    sub-commands of the table of ``scripts/reproduce.py`` (| `table1 [--sigmas 0.5,1,2,4,8]` | ...)."""
    commands = []
    for document, index, text in blocks('bash'):
        for line in command_lines(text):
            commands += commands_of(shlex.split(line, comments=True), f'{document}, bash block {index + 1}: {line}')
    for document, text in TEXTS.items():
        for line in FENCE.sub('', text).splitlines():
            for span in re.findall(r'`([^`]+)`', line):
                try:
                    tokens = shlex.split(span)
                except ValueError:
                    continue
                if document == 'docs/reproducing-the-paper.md' and line.startswith(f'| `{span}`') \
                        and re.fullmatch(r'[\w-]+', tokens[0]):
                    tokens = ['python', 'scripts/reproduce.py', *tokens]
                commands += commands_of(tokens, f'{document}, inline: {span}')
    return commands


COMMANDS = documented_commands()
PROGRAMS = sorted({command.program for command in COMMANDS})


def flags_of(arguments: Tuple[str, ...]) -> List[str]:
    """The options (``--name``, ``-o``, ``-opt``) among ``arguments``, without their ``=value``."""
    flags = []
    for argument in arguments:
        match = re.match(r'\[?(--?[A-Za-z][\w-]*)', argument)
        if match:
            flags.append(match.group(1))
    return flags


def executable(program: Tuple[str, ...]) -> List[str]:
    if program[0] in CONSOLE_SCRIPTS:
        path = Path(sys.executable).with_name(program[0])
        return [str(path) if path.exists() else program[0]]
    return [sys.executable, *program[1:]]


@functools.lru_cache(maxsize=None)
def help_text(program: Tuple[str, ...], subcommand: str = '') -> str:
    """``program [subcommand] --help``, run once per program (cached); fails the test when it does not answer."""
    command = executable(program) + ([subcommand] if subcommand else []) + ['--help']
    environment = dict(os.environ, PYTHONWARNINGS='ignore')
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, f'{" ".join(program)} --help failed:\n{completed.stdout}\n{completed.stderr}'
    return completed.stdout


def subcommands(text: str) -> List[str]:
    """The sub-commands an argparse help lists, as ``{a,b,c}`` or one a line under a metavar (``COMMAND``)."""
    match = re.search(r'\{([\w,.-]+)\}', text)
    listed = []
    if re.search(r'[A-Z]+ \.\.\.', text):   # usage: prog [-h] COMMAND ...
        listed = re.findall(r'^ {4}([a-z][\w.-]*)(?: {2,}|\n)', text, re.MULTILINE)
    return (match.group(1).split(',') if match else []) + listed


def mentions(text: str, flag: str) -> bool:
    return re.search(r'(?<![\w-])' + re.escape(flag) + r'(?![\w-])', text) is not None


def test_the_docs_have_commands_to_check():
    programs = {' '.join(program) for program in PROGRAMS}
    assert {'ddr-train', 'ddr-test', 'ddr-score', 'ddr-tune-prompts', 'python scripts/reproduce.py',
            'python -m basicsr.train', 'python -m ddr_basicsr.train'} <= programs, programs
    assert len(COMMANDS) >= 60


@pytest.mark.slow
@pytest.mark.parametrize('program', PROGRAMS, ids=' '.join)
def test_documented_program_exists_and_takes_the_documented_flags(program):
    uses = [command for command in COMMANDS if command.program == program]
    text = help_text(program)
    problems = []
    for command in uses:
        choices = subcommands(text)
        first = next((argument for argument in command.arguments if not argument.startswith('-')), '')
        own_text = help_text(program, first) if first in choices else text
        for flag in flags_of(command.arguments):
            if not mentions(own_text, flag):
                problems.append(f'{flag} is not an option of {" ".join(program)} {first if first in choices else ""}'
                                f'(--help does not list it), in {command.where}')
    assert not problems, '\n'.join(problems)


def bash_scripts() -> List[Tuple[str, str]]:
    named = set()
    for document, text in TEXTS.items():
        named |= {(document, path) for path in re.findall(r'(?<![\w/.])scripts/[\w-]+\.(?:sh|py)\b', text)}
    return sorted(named)


@pytest.mark.parametrize('document, path', bash_scripts())
def test_named_script_exists(document, path):
    assert (REPO_ROOT / path).is_file(), f'{document} names {path}, which does not exist'


def expand_braces(pattern: str) -> List[str]:
    parts = re.split(r'\{([^{}]*)\}', pattern)
    choices = [[part] if index % 2 == 0 else part.split(',') for index, part in enumerate(parts)]
    return [''.join(combination) for combination in itertools.product(*choices)]


def option_files() -> List[Tuple[str, str]]:
    named = set()
    for document, text in TEXTS.items():
        named |= {(document, path) for path in re.findall(r'(?<![\w.-])options/[\w./{},*-]+?\.yml\b', text)}
    return sorted(named)


@pytest.mark.parametrize('document, pattern', option_files())
def test_named_option_file_exists(document, pattern):
    for path in expand_braces(pattern):
        if '*' in path:
            assert list(REPO_ROOT.glob(path)), f'{document}: no file matches {path}'
        else:
            assert (REPO_ROOT / path).is_file(), f'{document} names {path}, which does not exist'


def test_bash_blocks_run_only_the_demo_script():
    """The demo is run as ``bash scripts/demo.sh`` (its module moves with the package layout)."""
    for document, index, text in blocks('bash'):
        assert 'ddr_basicsr.demo' not in text, \
            f'{document}, bash block {index + 1}: run the demo as bash scripts/demo.sh'


@pytest.mark.parametrize('document, index, text', blocks('yaml'), ids=lambda value: str(value)[:20])
def test_yaml_block_parses(document, index, text):
    assert isinstance(yaml.safe_load(text), dict), f'{document}, yaml block {index + 1}'


def test_every_fence_has_a_known_language():
    for document, text in TEXTS.items():
        for language, _ in FENCE.findall(text):
            assert language in ('python', 'bash', 'yaml', 'text'), f'{document}: a ```{language} block is not checked'


def heading_anchors(text: str) -> set:
    """GitHub's anchors of the Markdown headings of ``text`` (code blocks left out)."""
    prose = FENCE.sub('', text)
    anchors = set()
    for heading in re.findall(r'^#{1,6} +(.+?) *$', prose, re.MULTILINE):
        anchors.add(re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-'))
    return anchors


def links() -> List[Tuple[str, str]]:
    found = []
    for document, text in TEXTS.items():
        prose = FENCE.sub('', text)
        found += [(document, target) for target in re.findall(r'\]\(([^)\s]+)\)', prose)
                  if not re.match(r'[a-z]+:', target)]
    return found


LINKS = links()


def test_the_docs_link_their_pages():
    readme_links = {target for document, target in LINKS if document == 'README.md'}
    for document in DOCUMENTS[1:]:
        assert document in readme_links, f'the README does not link {document}'


@pytest.mark.parametrize('document, target', LINKS)
def test_relative_link_points_to_an_existing_file_and_heading(document, target):
    path, _, anchor = target.partition('#')
    source = REPO_ROOT / document
    destination = (source.parent / path).resolve() if path else source
    assert destination.exists(), f'{document} links {target}: {destination} does not exist'
    if anchor and destination.suffix == '.md':
        anchors = heading_anchors(destination.read_text(encoding='utf-8'))
        assert anchor in anchors, f'{document} links {target}: no such heading in {path or document}'


def test_the_documented_torchrun_form_of_ddr_score_is_the_tested_one():
    """docs/blind-iqa.md starts ``ddr-score`` under torchrun with ``--no-python``; tests/test_score_sharded.py runs
    that form with two gloo processes against the one-process CSV."""
    assert any('torchrun --standalone --nproc_per_node=4 --no-python ddr-score' in line
               for _, _, text in blocks('bash') for line in command_lines(text))


def test_clip_weights_have_one_name():
    """``--pretrained`` everywhere; the old spellings are named in one place, the FAQ, as aliases."""
    for document, text in TEXTS.items():
        for old in ('--clip-weights', '--clip-pretrained'):
            if document == 'docs/faq.md':
                assert old in text, f'the FAQ names {old} as an alias of --pretrained'
            else:
                assert old not in text, f'{document} writes {old}: write --pretrained'
