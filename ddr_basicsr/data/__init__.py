"""Data: the eight IQA datasets of Table 3 read from their official files, and the preparation of the restoration
datasets (GoPro, RealBlur, RealSR + City100) into the crops and lmdb folders the option files read."""
__all__ = ['iqa_datasets', 'layouts', 'preparation']
