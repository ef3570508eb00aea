"""The parts of ``benchmarks/performance.py``.

* `perf.common`: command-line parsing, quantiles and the constants every part shares;
* `perf.processes`: running a child process and measuring it (wall, CPU, peak memory);
* `perf.cases`: the parent's side of each case: which worker or ``nstm`` command to launch;
* `perf.machine`: the description of the machine and software written with the figures;
* `perf.worker`: the hidden worker commands: build a step case as ``fit`` does and time it;
* `perf.scoring`: the quality cases' PSNR and SSIM against ground truth;
* `perf.report`: the markdown tables and the JSON file.

``ab_step.py`` and ``plain_step.py`` build their steps with `perf.worker.build_step_case`.
"""
