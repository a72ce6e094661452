"""The option schema: every entry refuses a value of the wrong type and one out of its range, naming the option
and the value; unknown keys of known sections get their close match; unusable option files are named."""
import copy
import re
from typing import Any, Iterator, Mapping, Tuple

import pytest

from ddr_basicsr.host import seam
from ddr_basicsr.host.option_schema import _NO_EXAMPLE, SCHEMA, Rule, check_schema
from ddr_basicsr.host.run_options import parse_plugin_options
from tiny_training import make_options

WRONG_TYPES = ({'a': 1}, ['a'], 'text', 3.5, True, 7)


def schema_entries() -> Iterator[Tuple[str, str, Rule]]:
    for section, rules in SCHEMA.items():
        for key, rule in rules.items():
            if object not in rule.kinds:
                yield section, key, rule


def with_value(opt: dict, section: str, key: str, value: Any) -> Tuple[dict, str]:
    """``opt`` with ``value`` at ``section.key``, and the option's name in messages."""
    opt = copy.deepcopy(opt)
    if section == '':
        opt[key] = value
        return opt, key
    if section == 'datasets':
        opt['datasets']['train'][key] = value
        return opt, f'datasets.train.{key}'
    opt.setdefault(section, {})[key] = value
    return opt, f'{section}.{key}'


@pytest.fixture(scope='module')
def valid(dataset_root, tiny_clip_path) -> dict:
    opt = make_options(dataset_root, tiny_clip_path)
    check_schema(opt, is_train=True)
    return opt


@pytest.mark.parametrize('section, key, rule', list(schema_entries()),
                         ids=[f'{section or "top"}.{key}' for section, key, _ in schema_entries()])
def test_each_entry_refuses_a_wrong_type_and_a_value_out_of_range(section, key, rule, valid):
    wrong = next(value for value in WRONG_TYPES if rule.problem(value) is not None)
    values = [wrong] + ([rule.out_of_range] if rule.out_of_range is not _NO_EXAMPLE else [])
    for value in values:
        opt, name = with_value(valid, section, key, value)
        with pytest.raises(ValueError, match=rf'^{re.escape(name)} must be .*, got {re.escape(repr(value))}$'):
            check_schema(opt, is_train=True)


def test_numbers_written_as_strings_are_named(valid):
    opt, _ = with_value(valid, 'train', 'total_iter', '1000')
    with pytest.raises(ValueError, match=r"^train.total_iter must be a positive integer, got '1000'"):
        check_schema(opt, is_train=True)


@pytest.mark.parametrize('section, key, match', [
    ('', 'trian', r"^trian \(top level\) is not an option .* \(did you mean 'train'\?\)"),
    ('val', 'metric', r"^val.metric is not an option .* \(did you mean 'metrics'\?\)"),
    ('logger', 'print_frq', r"^logger.print_frq is not an option .* \(did you mean 'print_freq'\?\)"),
    ('path', 'pretrain_network', r"^path.pretrain_network is not an option .* \(did you mean 'pretrain_network_g'"),
    ('datasets', 'use_flip', r"^datasets.train.use_flip is not an option .* \(did you mean 'use_hflip'\?\)"),
])
def test_unknown_keys_of_known_sections_get_their_close_match(section, key, match, valid):
    opt, _ = with_value(valid, section, key, 1)
    with pytest.raises(ValueError, match=match):
        check_schema(opt, is_train=True)
    check_schema(opt, is_train=True, strict_keys=False)  # a third-party model may read keys of its own


@pytest.mark.parametrize('content, match', [
    (b'', 'an option file is a YAML mapping .* this one holds nothing'),
    (b'- a\n- b\n', 'an option file is a YAML mapping .* this one holds list'),
    (b'name: caf\xe9\n', 'the option file is not UTF-8 text'),
])
def test_unusable_option_files_are_named(content, match, tmp_path, monkeypatch):
    path = tmp_path / 'bad.yml'
    path.write_bytes(content)
    monkeypatch.setattr(seam.RUN, 'forced', True)
    with pytest.raises(ValueError, match=rf'-opt {path}: {match}'):
        parse_plugin_options(str(tmp_path), True, ['-opt', str(path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bad.yml']


def test_the_project_and_basicsr_option_files_pass_the_schema():
    from pathlib import Path

    from ddr_basicsr.host.options import knows_every_key, load_yaml
    root = Path(__file__).resolve().parents[1]
    files = sorted((root / 'options').rglob('*.yml')) + sorted((root / 'tests' / 'data').rglob('*.yml'))
    assert len(files) > 100
    for path in files:
        opt = load_yaml(str(path))
        assert isinstance(opt, Mapping)
        check_schema(opt, is_train='test' not in path.parts, strict_keys=knows_every_key(opt))

