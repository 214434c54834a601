"""The kernels pack: SOL-ExecBench and KernelBench problems as labmind tasks (docs/packs/kernels.md).

Modules: `build` writes tasks from upstream checkouts; `calibrate` measures the GPU's peaks and each task's
bounds; `evaluate` is the trusted evaluator (it starts `driver` in a separate process); `score` and
`roofline` hold the formulas; `campaign` runs labs under one budget; `cli` is `labmind pack kernels`.
"""
