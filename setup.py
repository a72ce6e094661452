import os
import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

# One line run by `site` at interpreter start: attach ddr-basicsr to BasicSR when basicsr gets imported
# (see ddr_basicsr/host/__init__.py). It imports only the standard library until then, does nothing when
# DDR_BASICSR_PLUGIN is 0, false, off or no, or when the package is gone, and is removed by `pip uninstall`
# with the rest.
PTH_NAME = 'ddr_basicsr_plugin.pth'
PTH_LINE = ("import importlib.util, os; os.environ.get('DDR_BASICSR_PLUGIN', '1').strip().lower() in "
            "('0', 'false', 'off', 'no') or importlib.util.find_spec('ddr_basicsr') is None "
            "or __import__('ddr_basicsr')\n")


def read_version() -> str:
    """The version, written once: ``__version__`` in ddr_basicsr/__init__.py."""
    text = Path(__file__).with_name('ddr_basicsr').joinpath('__init__.py').read_text(encoding='utf-8')
    return re.search(r"^__version__ = '([^']+)'", text, re.MULTILINE).group(1)


def write_pth(folder: str) -> str:
    target = os.path.join(folder, PTH_NAME)
    os.makedirs(folder, exist_ok=True)
    with open(target, 'w', encoding='utf-8') as f:
        f.write(PTH_LINE)
    return target


class BuildPyWithPth(build_py):
    """Puts the start-up file at the root of the wheel (site-packages)."""

    def run(self):
        super().run()
        write_pth(self.build_lib)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH_NAME)]


class EditableWheelWithPth(editable_wheel):
    """`pip install -e .`: the same start-up file at the root of the editable wheel."""

    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
        files, mapping = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        write_pth(str(unpacked_wheel))
        return files, mapping


setup(
    name='ddr-basicsr',
    version=read_version(),
    description=('Deep Degradation Response (DDR, NeurIPS 2024) as a BasicSR plugin: loss, IQA metric, '
                 'NAFNet/Restormer training'),
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['ddr_basicsr', 'ddr_basicsr.*']),
    cmdclass={'build_py': BuildPyWithPth, 'editable_wheel': EditableWheelWithPth},
    install_requires=[
        'basicsr==1.4.2',
        'torch>=2.1',
        'torchvision>=0.16',
        'open_clip_torch>=2.24',
        'pyyaml',
        'lmdb',
        'opencv-python',
        'lpips>=0.1.4',
        'scipy',
        'scikit-image',
        'tqdm',
        'openpyxl',
        'matplotlib',
    ],
    extras_require={'test': ['pytest', 'pytest-xdist', 'ruff', 'pyiqa', 'torchmetrics'],
                    'iqa': ['pyiqa', 'torchmetrics']},
    entry_points={
        'console_scripts': [
            'ddr-train=ddr_basicsr.cli.train:main',
            'ddr-test=ddr_basicsr.cli.test:main',
            'ddr-score=ddr_basicsr.cli.score:main',
            'ddr-tune-prompts=ddr_basicsr.cli.tune_prompts:main',
        ],
    },
)
