"""The paper, table by table: one module per table or figure of the DDR paper, run by ``scripts/reproduce.py``.

table1 (pixel-domain DDR_blur on LIVE blur), fig1 (LPIPS under blur), fig2 (DDR distributions on LIVE in the
Wild), table2 (DDR vs complexity / colorfulness / sharpness / quality on CSIQ), table3 (blind IQA with pyiqa
baselines), table8 (blind-IQA ablation), fig7 (DDR vs VGG feature statistics), tables4_6 (restoration results
collected from finished runs), crops (zoomed crops of Figs. 5-10). Shared: common (reports, caches, dataset
folders), numbers (the paper's figures), icnet (IC9600 complexity).
"""
