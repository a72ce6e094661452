"""CUDA-graph replay of DDR's training path: the guard logic on CPU (capture faked), the real thing on a GPU."""
import pytest
import torch

from ddr_basicsr import DDR
from ddr_basicsr.core.cuda_graphs import GRAPH_REUSED_MESSAGE, GraphedFunction
from ddr_basicsr.losses.ddr_loss import DDRLoss

RESTORATION_SET = ['color', 'content', 'blur']
_skip_without_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                        reason='needs a CUDA GPU; CI and the 2-core dev machine have none, '
                                               'so these run on the lent GPU machine (see README, Speed)')


def needs_cuda(test):
    """Mark ``test`` as a GPU test (``-m gpu`` selects them) and skip it without CUDA."""
    return pytest.mark.gpu(_skip_without_cuda(test))


@pytest.fixture
def fake_capture(monkeypatch):
    """make_graphed_callables stand-in that counts captures and calls the function eagerly."""
    captures = []

    def capture(function, sample_args):
        captures.append(tuple(sample_args[0].shape))
        return function
    monkeypatch.setattr(torch.cuda, 'make_graphed_callables', capture)
    return captures


def test_graph_is_captured_once_per_key_and_outputs_are_fresh(fake_capture):
    graphed = GraphedFunction(lambda x: x * 2, max_graphs=2)
    x = torch.ones(2, 3, requires_grad=True)
    first, second = graphed(x, 'a'), graphed(x, 'a')
    assert fake_capture == [(2, 3)] and len(graphed) == 1
    assert first is not second and torch.equal(first, second)
    graphed(torch.ones(4, requires_grad=True), 'b')
    graphed(torch.ones(5, requires_grad=True), 'c')
    assert len(graphed) == 2 and fake_capture == [(2, 3), (4, ), (5, )]
    graphed.clear()
    assert len(graphed) == 0


def test_backward_of_an_overwritten_replay_raises(fake_capture):
    graphed = GraphedFunction(lambda x: x * 2)
    x = torch.ones(3, requires_grad=True)
    stale = graphed(x, 'a').sum()
    fresh = graphed(x, 'a').sum()
    fresh.backward()
    assert torch.equal(x.grad, torch.full((3, ), 2.0))
    with pytest.raises(RuntimeError, match='before the backward pass of an earlier call'):
        stale.backward()
    assert 'cuda_graphs=False' in GRAPH_REUSED_MESSAGE


def test_cpu_and_no_grad_calls_never_capture(fake_capture, tiny_clip_path):
    ddr = DDR(pretrained=tiny_clip_path, degradations=RESTORATION_SET, device='cpu')
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    ddr.score(images).sum().backward()
    with torch.no_grad():
        ddr.score(images)
    assert fake_capture == [] and images.grad is not None


def test_moving_ddr_drops_its_graphs(fake_capture, tiny_clip_path):
    ddr = DDR(pretrained=tiny_clip_path, degradations=RESTORATION_SET, device='cpu')
    ddr._graphed_responses(torch.rand(1, 3, 32, 32, requires_grad=True), 'key')
    assert len(ddr._graphed_responses) == 1
    ddr.to('cpu')
    assert len(ddr._graphed_responses) == 0


@needs_cuda
@pytest.mark.parametrize('record, degradations', [('loss_biqa_set', ['blur', 'color', 'noise', 'exposure']),
                                                  ('loss_restoration_set', RESTORATION_SET)])
def test_graphed_cuda_loss_matches_reference(tiny_clip_path, reference_vectors, record, degradations):
    ddr = DDR(pretrained=tiny_clip_path, degradations=degradations, device='cuda')
    for _ in range(3):
        images = torch.tensor(reference_vectors['train_batch'], device='cuda', requires_grad=True)
        loss = -ddr.score(images).mean()
        loss.backward()
        assert abs(loss.item() - float(reference_vectors[record])) < 1e-5
        expected = torch.tensor(reference_vectors[f'{record}_grad'], device='cuda')
        assert torch.allclose(images.grad, expected, atol=1e-5, rtol=0)
    assert len(ddr._graphed_responses) == 1


@needs_cuda
@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_graphed_and_eager_cuda_paths_agree(tiny_clip_path, precision):
    graphed = DDR(pretrained=tiny_clip_path, degradations=RESTORATION_SET, device='cuda', precision=precision)
    eager = DDR(pretrained=tiny_clip_path, degradations=RESTORATION_SET, device='cuda', precision=precision,
                cuda_graphs=False)
    generator = torch.Generator(device='cuda').manual_seed(0)
    for _ in range(3):
        images = torch.rand(4, 3, 96, 128, device='cuda', generator=generator)
        results = []
        for ddr in (graphed, eager):
            x = images.clone().requires_grad_(True)
            score = ddr.score(x)
            (-score.mean()).backward()
            results.append((score.detach(), x.grad))
        assert torch.allclose(results[0][0], results[1][0], atol=1e-6, rtol=0)
        assert torch.allclose(results[0][1], results[1][1], atol=1e-7, rtol=1e-4)
    assert len(graphed._graphed_responses) == 1 and len(eager._graphed_responses) == 0


@needs_cuda
def test_graphed_cuda_loss_refuses_a_second_forward_before_backward(tiny_clip_path):
    loss_fn = DDRLoss(pretrained=tiny_clip_path).to('cuda')
    images = torch.rand(2, 3, 64, 64, device='cuda', requires_grad=True)
    first = loss_fn(images)
    with torch.no_grad():
        loss_fn(images)
    first.backward()
    stale = loss_fn(images)
    loss_fn(images).backward()
    with pytest.raises(RuntimeError, match='cuda_graphs=False'):
        stale.backward()


@needs_cuda
def test_auto_precision_is_bf16_on_cuda_and_the_loss_default(tiny_clip_path):
    images = torch.rand(2, 3, 64, 64, device='cuda', generator=torch.Generator(device='cuda').manual_seed(0))
    loss_fn = DDRLoss(pretrained=tiny_clip_path, reduction='none').to('cuda')
    assert loss_fn.ddr.precision == 'auto'
    loss_fn.ddr.precision = 'bf16'
    bf16 = loss_fn(images)
    loss_fn.ddr.precision = 'auto'
    assert torch.equal(loss_fn(images), bf16)
