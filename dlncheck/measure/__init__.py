"""Measurement: every quantity the protocol computes from a trajectory, one subject per module.

Stage 4 of the pipeline. ``events`` and ``align`` (crossings, escapes, loss- and escape-aligned
checkpoints), ``analysis`` (spectra of every partial product per checkpoint), ``balance``,
``modes`` (mode coefficients), ``gauge`` (Procrustes alignment), ``compare`` (GD-vs-SGD
distances), ``stats`` (bootstrap, Wilson), ``stagewise`` (rank growth over time and eps),
``calibration`` (synthetic A = M + N), ``noise_metrics``, ``scaling`` and ``lr_sweep``.
"""
