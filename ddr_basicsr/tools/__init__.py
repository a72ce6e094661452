"""Development tools, apart from the runtime: benchmarks, fault injection, the option-file generator, the demo."""
