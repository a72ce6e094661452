"""Restoration data: the preparation of GoPro, RealBlur and RealSR + City100 into the crops and lmdb folders the
option files read, and the synthetic pairs of the tests and the demo (the IQA datasets are in ddr_basicsr.iqa)."""
__all__ = ['layouts', 'preparation', 'synthetic']
