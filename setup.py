from pathlib import Path

from setuptools import find_packages, setup

setup(
    name='ddr-basicsr',
    version='0.1.0',
    description='Deep Degradation Response (DDR, NeurIPS 2024) as a BasicSR plugin: loss, IQA metric, NAFNet/Restormer training',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['ddr_basicsr', 'ddr_basicsr.*']),
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
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'ddr-train=ddr_basicsr.train:main',
            'ddr-test=ddr_basicsr.test:main',
            'ddr-score=ddr_basicsr.score:main',
        ],
    },
)
