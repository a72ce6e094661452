"""DDR core: conformance with the authors' code, prompts, weights, inputs, modes."""
import numpy as np
import pytest
import torch

from ddr_basicsr import DDR
from ddr_basicsr.core.clip_loading import ClipWeightsError
from ddr_basicsr.core.ddr import square_patch_offsets
from ddr_basicsr.core.pixel_degradations import PIXEL_DEGRADATIONS
from ddr_basicsr.core.prompts import TABLE7_WORDS, prompt_pair, resolve_prompts

BIQA_SET = ['blur', 'color', 'noise', 'exposure']
RESTORATION_SET = ['color', 'content', 'blur']
ALL_ROWS = ['color', 'noise', 'blur', 'exposure', 'content']


@pytest.fixture(scope='module')
def ddr_all(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=ALL_ROWS, device='cpu')


@pytest.fixture(scope='module')
def ddr_biqa(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=BIQA_SET, device='cpu')


@pytest.mark.parametrize('record, degradations', [('loss_biqa_set', BIQA_SET),
                                                  ('loss_restoration_set', RESTORATION_SET)])
def test_loss_and_input_gradient_match_reference(tiny_clip_path, reference_vectors, record, degradations):
    ddr = DDR(pretrained=tiny_clip_path, degradations=degradations, device='cpu')
    images = torch.tensor(reference_vectors['train_batch'], requires_grad=True)
    loss = -ddr.score(images).mean()
    loss.backward()
    assert abs(loss.item() - float(reference_vectors[record])) < 1e-5
    expected_grad = torch.tensor(reference_vectors[f'{record}_grad'])
    assert torch.allclose(images.grad, expected_grad, atol=1e-5, rtol=0)
    assert (images.grad - expected_grad).abs().max() < 1e-3 * expected_grad.abs().max()


def test_per_degradation_scores_match_reference(ddr_all, reference_vectors):
    responses = ddr_all.responses(torch.tensor(reference_vectors['train_batch']))
    assert list(responses) == ALL_ROWS
    got = torch.stack([responses[name] for name in ALL_ROWS]).detach().numpy()
    np.testing.assert_allclose(got, reference_vectors['per_degradation_scores'], atol=1e-5, rtol=0)


def test_quality_scores_match_reference(ddr_biqa, reference_vectors):
    images = [torch.tensor(reference_vectors[f'quality_image_{i}']) for i in range(4)]
    np.testing.assert_allclose(ddr_biqa.quality(images).numpy(), reference_vectors['quality_scores'], atol=1e-5, rtol=0)
    for image, expected in zip(images, reference_vectors['quality_scores']):
        assert abs(ddr_biqa.quality(image[None]).item() - expected) < 1e-5


def test_quality_batches_equal_single_images(ddr_biqa):
    torch.manual_seed(0)
    images = [torch.rand(3, 40, 64), torch.rand(3, 40, 64), torch.rand(3, 50, 50), torch.rand(3, 40, 64)]
    together = ddr_biqa.quality(images, batch_size=2)
    alone = torch.cat([ddr_biqa.quality([image]) for image in images])
    assert torch.allclose(together, alone, atol=1e-6)


def test_square_patch_offsets_follow_reference_rule():
    assert square_patch_offsets(120, 200) == [0, 80]
    assert square_patch_offsets(224, 500) == [0, 138, 276]
    assert square_patch_offsets(150, 150) == [0]


def test_non_square_score_is_patch_mean_and_differentiable(ddr_biqa):
    torch.manual_seed(1)
    image = torch.rand(2, 3, 48, 100, requires_grad=True)
    score = ddr_biqa.score(image)
    patches = [image[..., :, left:left + 48] for left in square_patch_offsets(48, 100)]
    expected = torch.stack([ddr_biqa.score(patch) for patch in patches]).mean(0)
    assert torch.allclose(score, expected, atol=1e-6)
    score.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_gradients_reach_input_not_clip(ddr_biqa):
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    ddr_biqa.score(image).sum().backward()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in ddr_biqa.parameters())


def test_clip_stays_in_eval_mode_and_text_is_cached(tiny_clip_path):
    holder = torch.nn.Sequential(DDR(pretrained=tiny_clip_path, device='cpu'))
    holder.train()
    assert holder[0].training and not holder[0].clip.training
    holder[0].clip.encode_text = None  # text directions are computed once, at construction
    assert holder[0].score(torch.rand(1, 3, 32, 32)).shape == (1,)


def test_table7_and_user_prompts():
    assert prompt_pair(*TABLE7_WORDS['blur']) == ('A blurry photo with low-quality.',
                                                  'A sharp photo with high-quality.')
    assert prompt_pair('noise degraded', 'clean')[0] == 'A noise degraded photo with low-quality.'
    sentences = ('A hazy picture.', 'A clear picture.')
    assert prompt_pair(*sentences) == sentences
    resolved = resolve_prompts(['blur', 'haze', ('rainy', 'dry')], {'haze': ('hazy', 'haze-free')})
    assert list(resolved) == ['blur', 'haze', 'rainy/dry']
    assert resolved['haze'] == ('A hazy photo with low-quality.', 'A haze-free photo with high-quality.')
    assert list(resolve_prompts(None, {'haze': ('hazy', 'clear')})) == ['haze']
    assert list(resolve_prompts(None)) == RESTORATION_SET
    assert list(resolve_prompts('color, noise')) == ['color', 'noise']


@pytest.mark.parametrize('degradations, prompts, message', [
    (['blurr'], None, "unknown degradation 'blurr'; valid names: color, noise, blur, exposure, content"),
    (['blur'], {'x': ('hazy', 'A clear photo.')}, 'mixes a sentence and a word'),
    (['blur'], {'x': ('hazy',)}, "prompts['x'] must be a pair"),
    ([], None, 'degradation set is empty'),
])
def test_bad_prompts_are_explained(degradations, prompts, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        resolve_prompts(degradations, prompts)


def test_custom_prompt_changes_the_response(tiny_clip_path):
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    table7 = DDR(pretrained=tiny_clip_path, degradations=['blur'], device='cpu').score(image)
    custom = DDR(pretrained=tiny_clip_path, degradations=['blur'], prompts={'blur': ('hazy', 'clear')},
                 device='cpu').score(image)
    assert not torch.allclose(table7, custom)


def test_adaptation_switch_and_distances(tiny_clip_path):
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    scores = {}
    for adaptation, distance in ((True, 'cosine'), (True, 'l1'), (True, 'l2'), (False, 'cosine')):
        ddr = DDR(pretrained=tiny_clip_path, adaptation=adaptation, distance=distance, device='cpu')
        scores[adaptation, distance] = ddr.score(image)
        assert (scores[adaptation, distance] > 0).all()
    assert not torch.allclose(scores[True, 'cosine'], scores[False, 'cosine'])
    # l1 and l2 measure |F_d - F| = |T̂|: with adaptation T̂ has mean(F), std(F), so l2 = mean(F)² + var(F)·(D-1)/D
    ddr = DDR(pretrained=tiny_clip_path, device='cpu')
    features = ddr.encode_images(ddr._patches(image)[0])
    std, mean = torch.std_mean(features, dim=-1)
    direction = ddr.text_directions
    expected = ((direction.unsqueeze(0) * std[:, None, None] + mean[:, None, None]) ** 2).mean(-1).mean(-1)
    assert torch.allclose(scores[True, 'l2'], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown distance 'l3'"):
        DDR(pretrained=tiny_clip_path, distance='l3', device='cpu')


@pytest.mark.parametrize('images, error, message', [
    ([[0.5]], TypeError, 'expects a torch.Tensor'),
    (torch.rand(3, 32, 32), ValueError, r'4-D tensor .* x.unsqueeze\(0\)'),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, 'float images'),
    (torch.rand(0, 3, 32, 32), ValueError, 'empty batch'),
    (torch.rand(1, 4, 32, 32), ValueError, r'3 RGB channels .* x\[:, :3\]'),
    (torch.rand(1, 3, 8, 64), ValueError, 'too small'),
    (torch.full((1, 3, 32, 32), float('nan')), ValueError, 'NaN or Inf'),
])
def test_bad_inputs_are_explained(ddr_biqa, images, error, message):
    with pytest.raises(error, match=message):
        ddr_biqa.score(images)


def test_grey_channel_is_replicated(ddr_biqa):
    grey = torch.rand(1, 1, 32, 32)
    assert torch.allclose(ddr_biqa.score(grey), ddr_biqa.score(grey.repeat(1, 3, 1, 1)))


def test_reduced_precision_is_close_to_float32(tiny_clip_path, reference_vectors):
    images = torch.tensor(reference_vectors['train_batch'])
    fp32 = DDR(pretrained=tiny_clip_path, device='cpu').score(images)
    bf16 = DDR(pretrained=tiny_clip_path, device='cpu', precision='bf16').score(images)
    assert torch.allclose(bf16, fp32, rtol=5e-2)
    auto = DDR(pretrained=tiny_clip_path, device='cpu', precision='auto')
    assert torch.equal(auto.score(images), fp32)  # auto is fp32 on a CPU
    with pytest.raises(ValueError, match='unknown precision'):
        DDR(pretrained=tiny_clip_path, precision='int8', device='cpu')


def test_pixel_domain_ddr(tiny_clip_path):
    ddr = DDR(pretrained=tiny_clip_path, domain='pixel', degradations=['blur', 'noise', 'jpeg'],
              pixel_levels={'blur': 1.5}, device='cpu')
    assert ddr.degradation_names == ('blur', 'noise', 'jpeg')
    assert ddr.pixel_levels == {'blur': 1.5, 'noise': 0.1, 'jpeg': 30.0}
    image = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(5), requires_grad=True)
    first, second = ddr.responses(image), ddr.responses(image)
    for name in ddr.degradation_names:
        assert torch.equal(first[name], second[name]) and (first[name] > 0).all()
    ddr.score(image).sum().backward()
    assert image.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown pixel-domain degradation"):
        DDR(pretrained=tiny_clip_path, domain='pixel', degradations=['color'], device='cpu')


@pytest.mark.parametrize('name, level', [('blur', 1.5), ('noise', 0.1), ('jpeg', 30.0)])
def test_pixel_degradations_work_with_and_without_a_generator(name, level):
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(3)
    default = PIXEL_DEGRADATIONS[name](images, level)
    torch.manual_seed(3)
    assert torch.equal(PIXEL_DEGRADATIONS[name](images, level), default)  # the global generator, seeded
    seeded = PIXEL_DEGRADATIONS[name](images, level, torch.Generator().manual_seed(1))
    assert seeded.shape == images.shape and not torch.equal(seeded, images)
    assert torch.equal(seeded, PIXEL_DEGRADATIONS[name](images, level, torch.Generator().manual_seed(1)))
    if name == 'noise':
        assert (default - images).std().item() == pytest.approx(level, rel=0.1)


def test_local_openai_state_dict_and_weight_errors(tiny_clip_path, tmp_path, monkeypatch):
    state_dict = torch.load(tiny_clip_path, weights_only=True)
    prefixed = tmp_path / 'wrapped.pt'
    torch.save({'state_dict': {f'module.{k}': v for k, v in state_dict.items()}}, prefixed)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    assert torch.equal(DDR(pretrained=str(prefixed), device='cpu').score(image),
                       DDR(pretrained=tiny_clip_path, device='cpu').score(image))

    with pytest.raises(ClipWeightsError, match=r"'.*missing\.pt' for model 'ViT-B-32' not found"):
        DDR(pretrained=str(tmp_path / 'missing.pt'), device='cpu')

    fp32_file = tmp_path / 'open_clip_format.pt'
    torch.save({k: v.float() for k, v in state_dict.items()}, fp32_file)
    with pytest.raises(ClipWeightsError,
                       match="could not load CLIP weights from .*open_clip_format.pt for model 'ViT-B-32'"):
        DDR(pretrained=str(fp32_file), device='cpu')

    import open_clip.factory

    def offline(*args, **kwargs):
        raise ConnectionError('network is unreachable')

    monkeypatch.setattr(open_clip.factory, 'download_pretrained', offline)  # the network is never reached
    hub_tag = 'openai'
    with pytest.raises(ClipWeightsError) as error:
        DDR(pretrained=hub_tag, device='cpu')
    message = str(error.value)
    assert "'openai' for model 'ViT-B-32'" in message and 'network is unreachable' in message
    assert 'timm/vit_base_patch32_clip_224.openai' in message and "pretrained='/path/to/ViT-B-32.pt'" in message


def test_unknown_model_name(tiny_clip_path):
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-X'"):
        DDR(model='ViT-X', pretrained=tiny_clip_path, device='cpu')


@pytest.mark.parametrize('batch_size', [0, -1, 2.5, True])
def test_quality_refuses_a_batch_size_that_is_not_a_positive_integer(tiny_clip_path, batch_size):
    ddr = DDR(pretrained=tiny_clip_path, device='cpu')
    with pytest.raises(ValueError, match=rf'batch_size must be a positive integer .*got {batch_size!r}'):
        ddr.quality([torch.rand(3, 32, 32)], batch_size=batch_size)
