"""Learnable degradation prompts: step-0 identity, tuning on a synthetic MOS, the prompt file and its users (CPU)."""
import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ddr_basicsr.cli.score import main as score_main
from ddr_basicsr.cli.tune_prompts import main as tune_main
from ddr_basicsr.core.ddr import DDR, text_directions
from ddr_basicsr.core.learned_prompts import PromptFileError, PromptLearner, load_prompt_file
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS, RESTORATION_DEGRADATIONS, PromptSet, resolve_prompts
from ddr_basicsr.iqa.datasets import IQADataset
from ddr_basicsr.iqa.descriptor import descriptor_report
from ddr_basicsr.iqa.evaluation import evaluate, metric_settings, write_reports
from ddr_basicsr.iqa.prompt_tuning import TuningSettings, ranking_loss, run_protocol
from ddr_basicsr.losses.ddr_loss import DDRLoss
from test_iqa_datasets import WRITERS

IMAGES = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def ddr(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')


def write_blur_dataset(root: Path, count: int = 24) -> IQADataset:
    """``count`` smooth random images blurred with sigma in [0.3, 3.3]; the "MOS" is 5 - sigma."""
    root.mkdir()
    rng = np.random.default_rng(0)
    items = []
    for index in range(count):
        base = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (32, 32), interpolation=cv2.INTER_CUBIC)
        sigma = 0.3 + 3 * rng.random()
        path = root / f'{index:03d}.png'
        cv2.imwrite(str(path), cv2.GaussianBlur(base, (0, 0), sigma))
        items.append((str(path), 5 - sigma))
    return IQADataset('synthblur', str(root), tuple(items), higher_better=True, score_label='MOS')


@pytest.fixture(scope='module')
def tuned_ddr(tuned, tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, prompts=tuned[0].prompt_file, device='cpu')


@pytest.fixture(scope='module')
def tuned(ddr, tmp_path_factory):
    """Prompts tuned for 2 epochs on the synthetic blur dataset: (outcome, CLIP's state before, folder, dataset)."""
    folder = tmp_path_factory.mktemp('tuning')
    dataset = write_blur_dataset(folder / 'blur')
    clip_before = {name: tensor.clone() for name, tensor in ddr.clip.state_dict().items()}
    settings = TuningSettings(epochs=2, images_per_step=16, learning_rate=1e-2, patience=10, val_fraction=0.25)
    outcome = run_protocol(ddr, dataset, [dataset], str(folder / 'out'), settings, progress=False)
    return outcome, clip_before, folder, dataset


@pytest.mark.parametrize('context', ['per_degradation', 'shared'])
def test_step_zero_reproduces_hand_written_ddr(ddr, context):
    learner = PromptLearner(ddr.clip, ddr.tokenizer, ddr.prompts, context)
    directions = text_directions(learner.text_features(ddr.clip), ddr.adaptation)
    assert torch.allclose(directions, ddr.text_directions, atol=1e-5, rtol=0)
    assert learner.context.requires_grad and not any(p.requires_grad for p in ddr.clip.parameters())


def test_shared_context_needs_the_template(ddr):
    custom = resolve_prompts(None, {'haze': ('A hazy photo.', 'A clear photo.')})
    with pytest.raises(ValueError, match='context "shared" needs prompts written with the Eq. 6 template'):
        PromptLearner(ddr.clip, ddr.tokenizer, custom, 'shared')


def test_ranking_loss_prefers_agreeing_order():
    targets = torch.tensor([1.0, 2.0, 3.0, 3.0])
    agreeing = ranking_loss(torch.tensor([0.1, 0.2, 0.3, 0.3]), targets)
    reversed_order = ranking_loss(torch.tensor([0.3, 0.2, 0.1, 0.1]), targets)
    assert float(agreeing) < float(reversed_order)
    assert torch.allclose(ranking_loss(torch.tensor([1.0, 2.0, 3.0, 3.0]) * 1e3 + 5, targets), agreeing)


def test_tuning_raises_training_srcc_and_leaves_clip_alone(ddr, tuned):
    outcome, clip_before = tuned[:2]
    history = outcome.history
    assert [record.epoch for record in history] == [0, 1, 2]
    assert max(record.train_srcc for record in history[1:]) > history[0].train_srcc + 0.3
    for name, tensor in ddr.clip.state_dict().items():
        assert torch.equal(tensor, clip_before[name]), name
    folder = Path(outcome.prompt_file).parent
    assert (folder / 'tune_prompts.log').read_text().count('epoch') >= 3
    rows = list(csv.DictReader(io.StringIO((folder / 'tuning_history.csv').read_text())))
    assert [row['epoch'] for row in rows] == ['0', '1', '2']
    cross_dataset = (folder / 'cross_dataset.md').read_text()
    assert '| synthblur | 24 |' in cross_dataset and '| SRCC tuned (opinion-aware) |' in cross_dataset
    assert 'Tuned columns: opinion-aware: prompts tuned on the MOS of synthblur, 18 training images (prompts.pt)' \
        in cross_dataset
    table = list(csv.DictReader(io.StringIO((folder / 'cross_dataset.csv').read_text())))
    assert table[0]['tuned_prompts'].startswith('opinion-aware: prompts tuned on the MOS of synthblur')


def test_prompt_file_round_trips_into_ddr_and_the_loss(ddr, tuned, tuned_ddr, tiny_clip_path):
    outcome = tuned[0]
    learned = load_prompt_file(outcome.prompt_file)
    assert list(learned.prompts) == list(BIQA_DEGRADATIONS) and learned.prompts == dict(ddr.prompts)
    assert learned.training['dataset'] == 'synthblur' and learned.training['images'] == 24
    assert learned.backbone['description'] == ddr.clip_description
    best = max(outcome.history, key=lambda record: record.val_srcc)
    assert learned.training['best_epoch'] == best.epoch
    learner = learned.learner(ddr.clip, ddr.tokenizer)
    assert torch.equal(learner.context, learned.context)

    expected = text_directions(learner.text_features(ddr.clip), ddr.adaptation)
    assert torch.allclose(tuned_ddr.text_directions, expected, atol=1e-6)
    assert not torch.allclose(tuned_ddr.quality(IMAGES), ddr.quality(IMAGES))

    loss = DDRLoss(pretrained=tiny_clip_path, prompts=outcome.prompt_file, degradations='blur,color',
                   precision='fp32')
    assert torch.allclose(loss.ddr.text_directions, expected[[2, 0]], atol=1e-6)
    assert torch.allclose(loss(IMAGES), -tuned_ddr.response_matrix(IMAGES)[:, [2, 0]].mean(), atol=1e-6)
    with pytest.raises(PromptFileError, match=r"\['content'\] cannot be used with them"):
        learned.select(RESTORATION_DEGRADATIONS)  # what DDRLoss(prompts=file) with its default degradations does


def test_backbone_mismatch_is_refused(tuned, tiny_clip_path, tmp_path):
    outcome = tuned[0]
    state = torch.load(tiny_clip_path, weights_only=True)
    state['token_embedding.weight'] = state['token_embedding.weight'] * 1.5
    other = tmp_path / 'other_clip.pt'
    torch.save(state, other)
    with pytest.raises(PromptFileError, match='were tuned with CLIP .* another token-embedding space'):
        DDR(pretrained=str(other), prompts=outcome.prompt_file, device='cpu')
    not_prompts = tmp_path / 'weights.pt'
    torch.save({'params': {}}, not_prompts)
    with pytest.raises(PromptFileError, match='not a prompt file written by ddr-tune-prompts'):
        load_prompt_file(not_prompts)


def test_one_loader_reads_a_mapping_yaml_json_and_a_tuned_file(tuned, tiny_clip_path, tmp_path):
    pairs = {'haze': ['hazy', 'clear'], 'blur': ['blurry', 'sharp']}
    (tmp_path / 'prompts.yml').write_text('haze: [hazy, clear]\nblur: [blurry, sharp]\n')
    (tmp_path / 'prompts.json').write_text(json.dumps(pairs))
    for given in (pairs, str(tmp_path / 'prompts.yml'), tmp_path / 'prompts.json'):
        prompt_set = PromptSet.load(given)
        assert prompt_set.learned is None and prompt_set.pairs == pairs
        assert prompt_set.select(None) == resolve_prompts(None, pairs)
        assert PromptSet.load(prompt_set) is prompt_set
    learned = PromptSet.load(tuned[0].prompt_file)
    assert learned.learned is not None and list(learned.select(None)) == list(BIQA_DEGRADATIONS)
    assert list(learned.select('blur,color')) == ['blur', 'color']
    from_file = DDR(pretrained=tiny_clip_path, prompts=str(tmp_path / 'prompts.yml'), device='cpu')
    from_set = DDR(pretrained=tiny_clip_path, prompts=PromptSet.load(pairs), device='cpu')
    assert from_file.degradation_names == ('haze', 'blur')
    assert torch.equal(from_file.text_directions, from_set.text_directions)
    (tmp_path / 'list.yml').write_text('[hazy, clear]\n')
    with pytest.raises(ValueError, match='expected a mapping'):
        PromptSet.load(tmp_path / 'list.yml')


def test_ddr_score_reads_a_tuned_prompt_file(tuned, tuned_ddr, tiny_clip_path, tmp_path):
    outcome, _, folder, _ = tuned
    assert PromptSet.load(outcome.prompt_file).learned.path == outcome.prompt_file
    image = str(folder / 'blur' / '000.png')
    output = tmp_path / 'scores.csv'
    assert score_main([image, '--prompts', outcome.prompt_file, '--pretrained', tiny_clip_path, '--device', 'cpu',
                       '--workers', '0', '--no-progress', '-o', str(output)]) == 0
    row = next(csv.DictReader(io.StringIO(output.read_text())))
    rgb = torch.from_numpy(cv2.imread(image)[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    assert float(row['ddr']) == pytest.approx(float(tuned_ddr.quality(rgb[None])[0]), abs=1e-6)
    assert list(row)[2:6] == list(BIQA_DEGRADATIONS)


def test_a_rerun_resumes_from_the_saved_state(ddr, tuned):
    outcome, _, folder, dataset = tuned
    with pytest.raises(ValueError, match='cannot be split'):
        run_protocol(ddr, dataset, [], str(folder / 'other'), TuningSettings(val_fraction=0.05), progress=False)
    first = load_prompt_file(outcome.prompt_file).context
    settings = TuningSettings(epochs=2, images_per_step=16, learning_rate=1e-2, patience=10, val_fraction=0.25)
    again = run_protocol(ddr, dataset, [], str(Path(outcome.prompt_file).parent), settings, progress=False)
    summary = [(record.epoch, record.train_srcc, record.val_srcc) for record in outcome.history]
    assert [(record.epoch, record.train_srcc, record.val_srcc) for record in again.history] == summary  # not retrained
    assert 'resumed after epoch 2' in (Path(outcome.prompt_file).parent / 'tune_prompts.log').read_text()
    assert torch.equal(load_prompt_file(again.prompt_file).context, first)


def test_ddr_tune_prompts_command_on_a_dataset_in_its_official_layout(tuned, tiny_clip_path, tmp_path, capsys):
    dataset = tuned[3]
    root = tmp_path / 'tid2013'
    (root / 'distorted_images').mkdir(parents=True)
    lines = []
    for path, mos in dataset.items:
        (root / 'distorted_images' / Path(path).name).write_bytes(Path(path).read_bytes())
        lines.append(f'{mos:.4f} {Path(path).name}')
    (root / 'mos_with_names.txt').write_text('\n'.join(lines) + '\n')
    output = tmp_path / 'out'
    assert tune_main(['--train', f'tid2013={root}', '--eval', f'tid2013={root}', '--output-dir', str(output),
                      '--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', '0', '--epochs', '1',
                      '--images-per-step', '16', '--val-fraction', '0.25', '--lr', '0.01', '--no-progress']) == 0
    assert '| tid2013 | 24 |' in capsys.readouterr().out
    learned = load_prompt_file(output / 'prompts.pt')
    assert learned.training['dataset'] == 'tid2013' and learned.training['epochs_run'] == 1
    assert list(learned.prompts) == list(BIQA_DEGRADATIONS)


def test_reports_keep_tuned_prompts_apart_from_table3(tuned_ddr, ddr, tuned, tmp_path):
    WRITERS['livec'](str(tmp_path / 'livec'), (32, 40))
    label = 'opinion-aware: prompts tuned on the MOS of synthblur, 18 training images (prompts.pt)'
    rows, _, settings = evaluate([('livec', str(tmp_path / 'livec'))], str(tmp_path / 'biqa'), ['ddr'],
                                 lambda: tuned_ddr, workers=0)
    assert rows[0]['opinion_aware'] == label and rows[0]['paper_srcc'] is None
    markdown = write_reports(str(tmp_path / 'biqa'), rows, settings)
    table3, aware = markdown.split('## Opinion-aware: DDR with tuned prompts, apart from the opinion-unaware Table 3')
    assert 'DDR SRCC' not in table3 and '0.6613' not in markdown  # no paper figure beside a tuned DDR
    assert 'No opinion-unaware metric was run.' in table3
    assert aware.startswith(f'\n\n{label}. Trained on subjective scores') and '| livec | 3/3 |' in aware
    biqa_csv = list(csv.DictReader(io.StringIO((tmp_path / 'biqa' / 'biqa_results.csv').read_text())))
    assert biqa_csv[0]['opinion_aware'] == label and biqa_csv[0]['paper_srcc'] == ''
    plain, _, plain_settings = evaluate([('livec', str(tmp_path / 'livec'))], str(tmp_path / 'plain'), ['ddr'],
                                        lambda: ddr, workers=0)
    assert '| DDR SRCC | DDR SRCC (paper) |' in write_reports(str(tmp_path / 'plain'), plain, plain_settings)
    images = dict(list(tuned[3].items)[:3])
    descriptor, _ = descriptor_report(tuned_ddr, images, str(tmp_path / 'descriptor'), top_k=1, workers=0)
    assert f'- prompts: {label}' in descriptor


def test_evaluation_cache_key_and_command_line_errors(ddr, tuned_ddr, capsys):
    settings = metric_settings('livec', 'ddr', {}, None, tuned_ddr)
    assert settings['learned_prompts'] == tuned_ddr.learned_prompts.digest
    assert 'learned_prompts' not in metric_settings('livec', 'ddr', {}, None, ddr)
    with pytest.raises(SystemExit):
        tune_main(['--train', 'nope=somewhere', '--output-dir', 'x'])
    assert "expected NAME=ROOT with NAME in csiq" in capsys.readouterr().err
    assert tune_main(['--train', 'livec=/does/not/exist', '--output-dir', 'x']) == 2
    assert 'ddr-tune-prompts: error: livec: dataset root folder not found: /does/not/exist' in capsys.readouterr().err
