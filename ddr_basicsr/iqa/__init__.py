"""Blind-IQA evaluation (paper Table 3) and DDR as an image descriptor (Table 2 / Fig. 4); loaded on first use."""
import importlib

_MODULES = {
    'evaluation': ['METRIC_HIGHER_BETTER', 'NIQE_BLOCK', 'NIQE_SOURCE', 'PAPER_TABLE3', 'TABLE3_METHODS', 'CacheError',
                   'Failure',
                   'ScoreCache', 'correlations', 'dataset_options', 'direction_sign', 'evaluate', 'format_number',
                   'format_results_csv', 'format_results_markdown', 'format_scores_csv', 'metric_settings',
                   'niqe_of_file', 'niqe_score', 'niqe_size_problem', 'record_outcomes', 'relative_name', 'result_row',
                   'run_ddr', 'run_niqe', 'settings_hash', 'srcc', 'too_small_message', 'write_reports'],
    'descriptor': ['ATTRIBUTES', 'PAPER_TABLE2', 'colorfulness', 'cpbd_sharpness', 'dataset_quality',
                   'descriptor_report', 'format_descriptor_scores_csv', 'format_table_csv', 'format_table_markdown',
                   'gather_quality', 'image_attributes', 'montage_figure', 'montage_selection', 'read_mos_csv',
                   'save_montage', 'score_descriptors', 'srcc_table', 'write_descriptor_report'],
}
_OWNER = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [name for names in _MODULES.values() for name in names]


def __getattr__(name: str):
    """Import :mod:`.evaluation` or :mod:`.descriptor` on first use of one of their names (torch, scipy, ...)."""
    if name in _OWNER:
        return getattr(importlib.import_module(f'{__name__}.{_OWNER[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
