"""The DDR core: the model, its prompt sets, CLIP loading and pixel degradations; it knows nothing of BasicSR."""
