"""Fig. 1: the same Gaussian blur changes different images by different amounts, measured by LPIPS.

For each image x (by default the first two images of LIVE in the Wild, or the files given), x_d = blur(x, σ) with
:func:`ddr_basicsr.core.pixel_degradations.gaussian_blur` and l(x, x_d) is the LPIPS distance of the project's
:class:`~ddr_basicsr.losses.lpips_loss.LPIPSLoss` (AlexNet trunk by default: the LPIPS metric of [3]). Writes the
images with their LPIPS (``fig1.png``) and the values (``fig1.md`` / ``.csv``).
"""
import os
from typing import Mapping, Optional, Sequence

import torch

from ddr_basicsr.core.pixel_degradations import gaussian_blur
from ddr_basicsr.paper.common import Report, open_dataset, save_figure, trunk_weights_error
from ddr_basicsr.paper.numbers import FIGURE_CLAIMS
from ddr_basicsr.utils.image_io import read_image

#: Blur of Fig. 1 (the paper does not give it): Gaussian σ in pixels.
FIG1_SIGMA = 2.0


def lpips_change(paths: Sequence[str], sigma: float, net: str = 'alex', pretrained: bool = True,
                 weights_path: Optional[str] = None) -> list:
    """[(image, blurred image, LPIPS(image, blurred))] of each file, images as (H, W, 3) arrays in [0, 1]."""
    from ddr_basicsr.losses.lpips_loss import LPIPS_TRUNKS, LPIPSLoss
    images = [read_image(path)[None] for path in paths]  # a missing image is named before any weights are looked for
    try:
        lpips = LPIPSLoss(net=net, pretrained=pretrained, weights_path=weights_path)
    except FileNotFoundError as error:
        raise trunk_weights_error(LPIPS_TRUNKS[net], '--lpips-weights', weights_path, error) from error
    results = []
    with torch.no_grad():
        for image in images:
            blurred = gaussian_blur(image, sigma).clamp(0, 1)
            results.append((image[0].permute(1, 2, 0).numpy(), blurred[0].permute(1, 2, 0).numpy(),
                            float(lpips(blurred, image))))
    return results


def plot_pairs(paths: Sequence[str], results: list, sigma: float, path: str) -> str:
    """One row per image: x and x_d, the LPIPS in the title."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(6, 3 * len(results)), layout='constrained')
    axes = figure.subplots(len(results), 2, squeeze=False)
    for row, (name, (image, blurred, value)) in enumerate(zip(paths, results)):
        axes[row][0].imshow(image)
        axes[row][0].set_title(f'x: {os.path.basename(name)}', fontsize=8)
        axes[row][1].imshow(blurred)
        axes[row][1].set_title(f'x_d (σ = {sigma:g} px): l(x, x_d) = {value:.4f}', fontsize=8)
        for axis in axes[row]:
            axis.set_axis_off()
    figure.suptitle('LPIPS change under the same Gaussian blur (paper Fig. 1)', fontsize=9)
    return save_figure(figure, path)


def fig1(roots: Mapping[str, str], output_dir: str, images: Optional[Sequence[str]] = None,
         sigma: float = FIG1_SIGMA, net: str = 'alex', pretrained: bool = True,
         weights_path: Optional[str] = None) -> Report:
    """LPIPS(x, blur(x)) of ``images`` (default: the first two of LIVE in the Wild); writes fig1.png/.md/.csv."""
    if images:
        source = 'files given with --images'
    else:
        livec, _, choices = open_dataset('livec', roots)
        images = livec.paths[:2]
        source = f'the first two images of LIVE in the Wild ({choices["root"]})'
    results = lpips_change(images, sigma, net, pretrained, weights_path)
    figure = plot_pairs(images, results, sigma, os.path.join(output_dir, 'fig1.png'))
    rows = [[os.path.basename(path), sigma, value] for path, (_, _, value) in zip(images, results)]
    protocol = {'images': source, 'blur': f'Gaussian σ = {sigma:g} px at the image\'s own resolution, kernel '
                                          '2·ceil(3σ)+1, reflect padding (the paper gives no level)',
                'LPIPS': f'LPIPSLoss(net={net}) of ddr_basicsr.losses (lpips package, calibrated linear layers); '
                         f'trunk weights: {weights_path or ("torchvision ImageNet" if pretrained else "random")}',
                'inputs': 'RGB in [0, 1] (LPIPS normalize=True)'}
    return Report('fig1', 'Fig. 1: LPIPS change under the same blur',
                  f'Paper (no values printed): {FIGURE_CLAIMS["fig1"]} Ours: l(x, x_d) per image.',
                  ['image', 'σ (px)', 'LPIPS l(x, x_d)'], rows, protocol, figures=[figure])
