"""NAFNet / NAFNetLocal / Restormer: official state-dict compatibility, forward rules and numerics."""
import copy
import json
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.models.base_model import BaseModel

from ddr_basicsr.archs.layers import ChannelLayerNorm, LocalAvgPool2d, box_mean_valid
from ddr_basicsr.archs.nafnet_arch import NAFBlock, NAFNet, NAFNetLocal
from ddr_basicsr.archs.restormer_arch import GDFN, MDTA, Restormer

KEY_LISTS = sorted((Path(__file__).parent / 'data' / 'archs').glob('*.keys.tsv'))
ARCH_CLASSES = {'NAFNet': NAFNet, 'NAFNetLocal': NAFNetLocal, 'Restormer': Restormer}
SMALL_NAFNET = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
TINY_RESTORMER = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4])


def read_key_list(path: Path) -> Tuple[str, dict, List[Tuple[str, Tuple[int, ...]]], Dict[str, str]]:
    """Parse a reference key list: (class name, constructor kwargs, [(name, shape)], header fields)."""
    header, entries = {}, []
    for line in path.read_text().splitlines():
        if line.startswith('#'):
            field, _, value = line[1:].strip().partition(': ')
            header[field] = value
        elif line.strip():
            name, shape, _ = line.split('\t')
            entries.append((name, tuple(int(s) for s in shape.split(','))))
    return header['class'], json.loads(header['constructor_kwargs']), entries, header


def randomize_(net: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Fill every parameter with scaled normal noise (beta/gamma included, which start at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return net


def random_image(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- official checkpoints
@pytest.mark.parametrize('key_list', KEY_LISTS, ids=lambda p: p.name.split('.')[0])
def test_official_key_list_loads_strictly(key_list: Path, tmp_path: Path) -> None:
    class_name, kwargs, entries, header = read_key_list(key_list)
    with torch.device('meta'):  # skip the random init of up to 116M parameters; load fills them
        net = ARCH_CLASSES[class_name](**kwargs)
    net = net.to_empty(device='cpu')
    state = net.state_dict()
    assert [(name, tuple(t.shape)) for name, t in state.items()] == entries  # names, shapes and order
    assert sum(t.numel() for t in state.values()) == int(header['state_dict_numel'])
    assert list(net.buffers()) == []

    generator = torch.Generator().manual_seed(0)
    synthetic = {name: torch.randn(shape, generator=generator) for name, shape in entries}
    checkpoint = tmp_path / 'official.pth'
    torch.save({'params': synthetic}, checkpoint)
    del synthetic
    loaded = torch.load(checkpoint, map_location='cpu', weights_only=True, mmap=True)['params']
    assert net.load_state_dict(loaded, strict=True).missing_keys == []
    for name in (entries[0][0], entries[len(entries) // 2][0], entries[-1][0]):
        assert torch.equal(net.state_dict()[name], loaded[name])


def test_nafnet_checkpoint_cross_loads_into_nafnet_local_via_basicsr(tmp_path: Path) -> None:
    source = randomize_(NAFNet(**SMALL_NAFNET))
    checkpoint = tmp_path / 'net_g.pth'
    torch.save({'params': source.state_dict()}, checkpoint)
    target = NAFNetLocal(**SMALL_NAFNET, train_size=(1, 3, 32, 32))
    BaseModel({'num_gpu': 0, 'is_train': False, 'dist': False}).load_network(target, str(checkpoint), strict=True)
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor)


@pytest.mark.parametrize('opt', [
    {'type': 'NAFNet', **SMALL_NAFNET},
    {'type': 'NAFNetLocal', **SMALL_NAFNET, 'train_size': [1, 3, 64, 64]},
    {'type': 'Restormer', **TINY_RESTORMER, 'LayerNorm_type': 'BiasFree'},
], ids=lambda opt: opt['type'])
def test_build_network_from_registry(opt: dict) -> None:
    net = build_network(dict(opt))
    assert type(net) is ARCH_CLASSES[opt['type']]


def official_bias_true_layout(bias_free: List[Tuple[str, Tuple[int, ...]]]) -> List[Tuple[str, Tuple[int, ...]]]:
    """The official Restormer(bias=True) state dict from its bias=False one: a bias after the weight of every
    conv in the transformer blocks, of reduce_chan_level2/3, skip_conv and output; none on patch_embed.proj
    (the official OverlapPatchEmbed is built without the flag) or the down/up-samplers."""
    with_bias = re.compile(r'(\.(attn\.(qkv|qkv_dwconv|project_out)|ffn\.(project_in|dwconv|project_out))'
                           r'|^(reduce_chan_level[23]|skip_conv|output))\.weight$')
    entries = []
    for name, shape in bias_free:
        entries.append((name, shape))
        if with_bias.search(name):
            entries.append((name[:-len('weight')] + 'bias', shape[:1]))
    return entries


def test_restormer_bias_true_loads_the_official_layout_strictly() -> None:
    _, kwargs, entries, _ = read_key_list(next(p for p in KEY_LISTS if p.name.startswith('Restormer-MotionDeblur')))
    expected = official_bias_true_layout(entries)
    with torch.device('meta'):
        net = Restormer(**{**kwargs, 'bias': True})
        official = {name: torch.empty(shape) for name, shape in expected}
    assert [(name, tuple(t.shape)) for name, t in net.state_dict().items()] == expected
    blocks = 2 * sum(kwargs['num_blocks']) - kwargs['num_blocks'][3] + kwargs['num_refinement_blocks']
    assert len(expected) - len(entries) == 6 * blocks + 3  # 6 convs per block; reduce_chan_level2/3, output
    assert net.load_state_dict(official, strict=True).unexpected_keys == []
    tiny = Restormer(**TINY_RESTORMER, bias=True, dual_pixel_task=True, inp_channels=6)
    assert 'patch_embed.proj.bias' not in tiny.state_dict() and tiny.state_dict()['skip_conv.bias'].shape == (16,)


# --------------------------------------------------------------------------- NAFNet forward
def test_nafnet_pads_bottom_right_with_zeros_and_crops() -> None:
    net = randomize_(NAFNet(**SMALL_NAFNET)).eval()
    image = random_image(1, 3, 37, 53)
    with torch.no_grad():
        out = net(image)
        # 2 levels -> multiple of 4; a pre-padded input makes the internal padding a no-op
        reference = net(F.pad(image, (0, 3, 0, 3)))[..., :37, :53]
    assert out.shape == image.shape
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-6)


def test_fresh_nafnet_is_intro_ending_residual() -> None:
    """beta/gamma start at zero, so every block is the identity (checks the zero init and skip wiring)."""
    net = NAFNet(img_channel=3, width=4, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1]).eval()
    image = random_image(2, 3, 8, 8)
    with torch.no_grad():
        intro = net.intro(image)
        skipped = net.ups[0](net.middle_blks(net.downs[0](intro))) + intro
        expected = net.ending(skipped) + image
        torch.testing.assert_close(net(image), expected)


def reference_layer_norm_2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
                            centred: bool = True) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    numerator = x - mean if centred else x
    y = numerator / torch.sqrt(var + eps) * weight[None, :, None, None]
    return y if bias is None else y + bias[None, :, None, None]


def apply_conv(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, groups=conv.groups)


def reference_gate(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[1] // 2
    return x[:, :half] * x[:, half:]


def test_nafblock_matches_formula() -> None:
    block = randomize_(NAFBlock(4)).double()
    x = random_image(2, 4, 9, 7).double()
    h = reference_layer_norm_2d(x, block.norm1.weight, block.norm1.bias, 1e-6)
    h = reference_gate(apply_conv(block.conv2, apply_conv(block.conv1, h)))
    h = apply_conv(block.conv3, h * apply_conv(block.sca[1], h.mean(dim=(2, 3), keepdim=True)))  # SCA, no sigmoid
    y = x + block.beta * h
    z = reference_layer_norm_2d(y, block.norm2.weight, block.norm2.bias, 1e-6)
    z = apply_conv(block.conv5, reference_gate(apply_conv(block.conv4, z)))
    torch.testing.assert_close(block(x), y + block.gamma * z)


def test_nafnet_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\).*\(1, 4, 16, 16\)'):
        NAFNet(**SMALL_NAFNET)(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match='as many decoder as encoder'):
        NAFNet(enc_blk_nums=[1, 1], dec_blk_nums=[1])


# --------------------------------------------------------------------------- NAFNetLocal / TLC
def reference_local_mean(x: torch.Tensor, kernel: Tuple[int, int]) -> torch.Tensor:
    """TLC by its definition: global mean if the window covers the map, else stride-1 box means
    replicate-padded back to the input size (floor of the padding top/left, ceil bottom/right)."""
    height, width = x.shape[-2:]
    if kernel[0] >= height and kernel[1] >= width:
        return x.mean(dim=(2, 3), keepdim=True)
    k1, k2 = min(kernel[0], height), min(kernel[1], width)
    valid = F.avg_pool2d(x, (k1, k2), stride=1)
    return F.pad(valid, ((k2 - 1) // 2, k2 // 2, (k1 - 1) // 2, k1 // 2), mode='replicate')


class ReferenceLocalPool(torch.nn.Module):
    def __init__(self, kernel: Tuple[int, int]) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reference_local_mean(x, self.kernel)


@pytest.mark.parametrize('size,kernel', [((9, 11), (4, 5)), ((8, 13), (8, 3)), ((10, 7), (3, 20)), ((5, 6), (1, 1))])
def test_local_pool_is_avg_pool_with_replicate_padding(size: Tuple[int, int], kernel: Tuple[int, int]) -> None:
    x = random_image(2, 3, *size).double()
    out = LocalAvgPool2d(kernel)(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, reference_local_mean(x, kernel))


def test_local_pool_is_global_when_kernel_covers_map_and_integral_image_is_accurate() -> None:
    x = random_image(1, 2, 6, 7)
    assert torch.equal(LocalAvgPool2d((6, 7))(x), F.adaptive_avg_pool2d(x, 1))
    large = random_image(1, 2, 120, 200) * 10 + 5
    expected = F.avg_pool2d(large.double(), (40, 64), stride=1)
    torch.testing.assert_close(box_mean_valid(large, 40, 64).double(), expected, rtol=0, atol=1e-5)


def pool_kernels(net: NAFNet) -> Dict[str, Tuple[int, int]]:
    return {name: module.kernel_size for name, module in net.named_modules() if isinstance(module, LocalAvgPool2d)}


def test_tlc_kernels_for_official_gopro_layout() -> None:
    net = NAFNetLocal(width=2, enc_blk_nums=[1, 1, 1, 28], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1])
    kernels = pool_kernels(net)
    assert len(kernels) == 31 + 1 + 4
    expected = {'encoders.0.0': 384, 'decoders.3.0': 384, 'encoders.1.0': 192, 'decoders.2.0': 192,
                'encoders.2.0': 96, 'decoders.1.0': 96, 'encoders.3.27': 48, 'decoders.0.0': 48, 'middle_blks.0': 24}
    for block, size in expected.items():
        assert kernels[f'{block}.sca.0'] == (size, size)


def test_tlc_kernels_equal_calibration_forward_at_train_size() -> None:
    """The official code sets each kernel from the feature size seen in a forward at train_size."""
    train_size = (1, 3, 30, 45)  # not a multiple of the padder (4): padding enters the sizes
    config = dict(img_channel=3, width=4, middle_blk_num=1, enc_blk_nums=[1, 2], dec_blk_nums=[2, 1])
    plain, local = NAFNet(**config), NAFNetLocal(**config, train_size=train_size)
    seen = {}
    for name, module in plain.named_modules():
        if name.endswith('sca.0'):
            module.register_forward_pre_hook(lambda m, args, name=name: seen.update({name: args[0].shape[-2:]}))
    with torch.no_grad():
        plain(torch.rand(train_size))
    base_h, base_w = int(1.5 * 30), int(1.5 * 45)
    calibrated = {name: (h * base_h // 30, w * base_w // 45) for name, (h, w) in seen.items()}
    assert calibrated == pool_kernels(local) and len(calibrated) == 7


def nafnet_pair(train_size, **config) -> Tuple[NAFNet, NAFNetLocal]:
    plain = randomize_(NAFNet(**config)).eval()
    local = NAFNetLocal(**config, train_size=train_size).eval()
    local.load_state_dict(plain.state_dict(), strict=True)
    return plain, local


def assert_local_matches_reference(plain: NAFNet, local: NAFNetLocal, image: torch.Tensor) -> float:
    """Check NAFNetLocal against NAFNet with each ``sca.0`` swapped for the reference TLC pool;
    return the largest difference to the plain NAFNet."""
    reference = copy.deepcopy(plain)
    for name, kernel in pool_kernels(local).items():
        reference.get_submodule(name.rsplit('.', 1)[0])[0] = ReferenceLocalPool(kernel)
    with torch.no_grad():
        out = local(image)
        torch.testing.assert_close(out, reference(image), rtol=0, atol=2e-5)
        return (out - plain(image)).abs().max().item()


@pytest.mark.parametrize('size,same', [((64, 64), True), ((96, 96), True), ((100, 100), False), ((64, 160), False)])
def test_nafnet_local_equals_nafnet_up_to_1p5_train_size(size: Tuple[int, int], same: bool) -> None:
    plain, local = nafnet_pair((1, 3, 64, 64), **SMALL_NAFNET)  # windows 96 / 48 / 24 at levels 0 / 1 / 2
    difference = assert_local_matches_reference(plain, local, random_image(1, 3, *size))
    assert difference == 0 if same else difference > 1e-4


def test_nafnet_local_default_train_size() -> None:
    config = dict(img_channel=3, width=4, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 1], dec_blk_nums=[1, 1, 1, 1])
    plain, local = nafnet_pair((1, 3, 256, 256), **config)
    assert local.train_size == (1, 3, 256, 256)
    assert assert_local_matches_reference(plain, local, random_image(1, 3, 256, 256)) == 0
    # 400 > 384 = 1.5 * 256: local statistics at level 0 only
    assert assert_local_matches_reference(plain, local, random_image(1, 3, 32, 400)) > 1e-4


def test_nafnet_local_train_mode_dtype_and_gradients() -> None:
    _, local = nafnet_pair((1, 3, 32, 32), **SMALL_NAFNET)
    image = random_image(1, 3, 60, 52)
    with torch.no_grad():
        eval_out = local(image)
    local.train()
    train_out = local(image)
    assert torch.equal(train_out, eval_out)  # TLC does not depend on the mode
    train_out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in local.parameters())
    with torch.no_grad():
        double_out = local.double()(image.double())
    assert double_out.dtype == torch.float64
    torch.testing.assert_close(double_out, eval_out.double(), rtol=1e-4, atol=1e-4)


def test_nafnet_local_rejects_a_bad_train_size() -> None:
    with pytest.raises(ValueError, match='train_size'):
        NAFNetLocal(**SMALL_NAFNET, train_size=(1, 3, 0, 256))


def reference_fast_local_mean(x: torch.Tensor, kernel: Tuple[int, int], max_stride: Tuple[int, int]) -> torch.Tensor:
    """TLC's fast implementation by its definition: global mean if the window covers the map; else keep every
    r-th row / column (r: the largest of 1..5 dividing the side, capped at max_stride), average k1 x k2 windows
    (k = min(subsampled side - 1, kernel // r)) at valid positions from the second row / column on, enlarge by
    nearest-neighbour interpolation with factor r, replicate-pad back (floor top/left, ceil bottom/right)."""
    height, width = x.shape[-2:]
    if kernel[0] >= height and kernel[1] >= width:
        return x.mean(dim=(2, 3), keepdim=True)
    r1 = min(max_stride[0], max(r for r in range(1, 6) if height % r == 0))
    r2 = min(max_stride[1], max(r for r in range(1, 6) if width % r == 0))
    grid = x[..., ::r1, ::r2]
    k1, k2 = min(grid.shape[-2] - 1, kernel[0] // r1), min(grid.shape[-1] - 1, kernel[1] // r2)
    means = F.avg_pool2d(grid, (k1, k2), stride=1)[..., 1:, 1:]
    enlarged = F.interpolate(means, scale_factor=(r1, r2), mode='nearest')
    pad_h, pad_w = height - enlarged.shape[-2], width - enlarged.shape[-1]
    return F.pad(enlarged, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), mode='replicate')


@pytest.mark.parametrize('size,kernel,max_stride', [
    ((20, 30), (8, 12), (5, 5)),   # strides 5, 5
    ((24, 18), (10, 7), (2, 5)),   # 4 capped to 2; 3
    ((21, 26), (9, 30), (4, 4)),   # 3; 2 with the window covering the width
    ((15, 16), (6, 6), (4, 4)),    # 5 capped to 4, which does not divide 15; 4
    ((13, 17), (4, 6), (5, 5)),    # no divisor: stride 1
])
def test_fast_local_pool_matches_its_definition(size, kernel, max_stride) -> None:
    x = random_image(2, 3, *size).double()
    out = LocalAvgPool2d(kernel, fast_max_stride=max_stride)(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, reference_fast_local_mean(x, kernel, max_stride))


def test_fast_local_pool_equals_the_exact_one_away_from_the_top_left_border() -> None:
    """At stride 1 with even windows the fast means are the exact ones; the first kernel/2 rows and columns
    differ (the fast version drops the windows that start at the first row / column)."""
    x = random_image(1, 2, 19, 23).double()
    exact = LocalAvgPool2d((6, 8))(x)
    fast = LocalAvgPool2d((6, 8), fast_max_stride=(1, 1))(x)
    torch.testing.assert_close(fast[..., 3:, 4:], exact[..., 3:, 4:])
    assert not torch.allclose(fast[..., :3, :], exact[..., :3, :])
    with pytest.raises(ValueError, match=r'fast_imp=True.*1x9.*fast_imp=False'):
        LocalAvgPool2d((4, 4), fast_max_stride=(1, 1))(random_image(1, 2, 1, 9))


def test_nafnet_local_fast_imp_builds_runs_and_pools_as_defined() -> None:
    train_size = (1, 3, 32, 32)
    plain, local = nafnet_pair(train_size, **SMALL_NAFNET)
    fast = NAFNetLocal(**SMALL_NAFNET, train_size=train_size, fast_imp=True).eval()
    fast.load_state_dict(plain.state_dict(), strict=True)
    assert fast.fast_imp and pool_kernels(fast) == pool_kernels(local)
    small = random_image(1, 3, 40, 44)  # within 1.5 x train size: global pooling, as NAFNet
    with torch.no_grad():
        assert torch.equal(fast(small), plain(small))
    seen = {}  # as the official code: each pool's stride cap comes from the map it sees at train_size
    for name, module in plain.named_modules():
        if name.endswith('sca.0'):
            module.register_forward_pre_hook(lambda m, args, name=name: seen.update({name: args[0].shape[-2:]}))
    with torch.no_grad():
        plain(torch.rand(train_size))
    reference = copy.deepcopy(plain).double()
    for name, kernel in pool_kernels(fast).items():
        max_stride = tuple(max(1, 5 * side // 32) for side in seen[name])  # 5 / 2 / 1 from level 0 down
        reference.get_submodule(name.rsplit('.', 1)[0])[0] = ReferenceFastPool(kernel, max_stride)
    assert sorted(set(max(1, 5 * side[0] // 32) for side in seen.values())) == [1, 2, 5]
    image = random_image(1, 3, 60, 90).double()  # padded to 60 x 92; strides (5, 4), (2, 2), (1, 1)
    with torch.no_grad():
        out = fast.double()(image)
        torch.testing.assert_close(out, reference(image))
        assert (out - local.double()(image)).abs().max() > 1e-6  # an approximation, not the exact TLC


class ReferenceFastPool(torch.nn.Module):
    def __init__(self, kernel: Tuple[int, int], max_stride: Tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.max_stride = kernel, max_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reference_fast_local_mean(x, self.kernel, self.max_stride)


# --------------------------------------------------------------------------- Restormer
@pytest.mark.parametrize('norm', ['WithBias', 'BiasFree'])
def test_restormer_odd_size_after_reflect_padding(norm: str) -> None:
    net = randomize_(Restormer(**TINY_RESTORMER, LayerNorm_type=norm), scale=0.1).eval()
    image = random_image(1, 3, 37, 53)
    assert Restormer.size_multiple == 8
    with pytest.raises(ValueError, match=r'multiples of 8, got 37x53.*reflect-pad'):
        net(image)
    padded = F.pad(image, (0, 3, 0, 3), mode='reflect')
    with torch.no_grad():
        out = net(padded)[..., :37, :53]
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert (out - image).abs().max() > 1e-3  # the network does something beyond the global residual


def test_restormer_dual_pixel_and_bad_inputs() -> None:
    net = Restormer(inp_channels=6, out_channels=3, dual_pixel_task=True, **TINY_RESTORMER).eval()
    assert net.state_dict()['skip_conv.weight'].shape == (16, 8, 1, 1)
    with torch.no_grad():
        assert net(random_image(2, 6, 16, 24)).shape == (2, 3, 16, 24)
    with pytest.raises(ValueError, match=r'\(B, 6, H, W\)'):
        net(random_image(1, 3, 16, 16))
    with pytest.raises(ValueError, match='LayerNorm_type'):
        Restormer(**TINY_RESTORMER, LayerNorm_type='Bias')
    with pytest.raises(ValueError, match='dual_pixel_task=True'):
        Restormer(inp_channels=6, **TINY_RESTORMER)


@pytest.mark.parametrize('eps,bias', [(1e-6, True), (1e-5, True), (1e-5, False)])
def test_channel_layer_norm_matches_formula(eps: float, bias: bool) -> None:
    norm = randomize_(ChannelLayerNorm(5, eps=eps, bias=bias)).double()
    x = (random_image(2, 5, 4, 3).double() - 0.3) * 0.01  # small variance: eps matters
    expected = reference_layer_norm_2d(x, norm.weight, norm.bias, eps, centred=bias)
    torch.testing.assert_close(norm(x), expected)
    if bias:  # the centred variant is torch's layer norm over a channels-last view
        channels_last = F.layer_norm(x.permute(0, 2, 3, 1), (5,), norm.weight, norm.bias, eps).permute(0, 3, 1, 2)
        torch.testing.assert_close(norm(x), channels_last)


def test_mdta_matches_formula() -> None:
    attn = randomize_(MDTA(dim=8, num_heads=2, bias=True), scale=0.5).double()
    x = random_image(2, 8, 5, 6).double()
    qkv = F.conv2d(F.conv2d(x, attn.qkv.weight, attn.qkv.bias), attn.qkv_dwconv.weight, attn.qkv_dwconv.bias,
                   padding=1, groups=24)
    heads = []
    for h in range(2):  # head h owns channels [4h, 4h+4) of each of q, k, v
        q, k, v = (qkv[:, offset + 4 * h: offset + 4 * h + 4].flatten(2) for offset in (0, 8, 16))
        q = q / q.norm(dim=-1, keepdim=True)
        k = k / k.norm(dim=-1, keepdim=True)
        logits = torch.einsum('bcn,bdn->bcd', q, k) * attn.temperature[h]
        weights = logits.exp() / logits.exp().sum(dim=-1, keepdim=True)
        heads.append(torch.einsum('bcd,bdn->bcn', weights, v))
    expected = F.conv2d(torch.cat(heads, dim=1).reshape(2, 8, 5, 6), attn.project_out.weight, attn.project_out.bias)
    torch.testing.assert_close(attn(x), expected)


def test_gdfn_matches_formula() -> None:
    ffn = randomize_(GDFN(dim=6, ffn_expansion_factor=2.66, bias=False)).double()
    hidden = int(6 * 2.66)
    assert ffn.project_out.weight.shape == (6, hidden, 1, 1) and hidden == 15
    x = random_image(1, 6, 5, 4).double()
    h = F.conv2d(F.conv2d(x, ffn.project_in.weight), ffn.dwconv.weight, padding=1, groups=2 * hidden)
    gelu = 0.5 * h[:, :hidden] * (1 + torch.erf(h[:, :hidden] / math.sqrt(2)))
    torch.testing.assert_close(ffn(x), F.conv2d(gelu * h[:, hidden:], ffn.project_out.weight))
