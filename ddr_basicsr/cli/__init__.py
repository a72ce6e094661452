"""Command-line entry points: ``ddr-train``, ``ddr-test``, ``ddr-score``, ``ddr-tune-prompts``
and their shared arguments."""
