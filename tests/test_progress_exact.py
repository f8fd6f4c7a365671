"""Exact matched-progress reading (dlncheck.measure.progress_exact) against a brute-force pass that
checkpoints every step of every run."""

import dataclasses

import torch

from dlncheck import Ensemble, presets
from dlncheck.engine._train import train
from dlncheck.measure import progress_exact
from dlncheck.suite import init_ensembles


class _NoCache:
    def ensemble(self, ensemble, **kwargs):
        return train(ensemble, **kwargs)


def test_read_steps_and_weights_match_a_pass_checkpointing_every_step():
    aligned = presets.experiment("saddle", "lowrank", 2, sgd_runs=3)
    base, inits = init_ensembles.random_small_inits(aligned, 2)
    ens = Ensemble(dataclasses.replace(base, steps=aligned.steps), inits)
    s = aligned.teacher.s[: aligned.teacher.rank]
    coarse = train(ens, checkpoints=init_ensembles.analysis_grid(ens.base))
    got = progress_exact.exact_matched_ends(_NoCache(), ens, list(coarse), [0, 1], s)
    every = train(ens, checkpoints=list(range(ens.base.steps + 1)))
    off_grid = 0
    for i, point in got.items():
        steps = coarse[i].checkpoint_steps
        k = point.index
        p_coarse = progress_exact.run_progress(coarse[i], s)
        q = torch.minimum(torch.cummax(p_coarse, -1).values[0, k], torch.cummax(p_coarse, -1).values[:, -1].min())
        running = torch.cummax(progress_exact.run_progress(every[i], s), -1).values  # (R, steps + 1)
        first = (running >= q).int().argmax(-1)  # each run's first step at GD's level
        expected = int(steps[k]) + first - first[0]
        expected[0] = steps[k]
        assert point.steps.tolist() == expected.tolist()
        assert point.level == float(q)
        for w_got, w_all in zip(point.weights, every[i].weights):
            assert torch.equal(w_got, w_all[torch.arange(len(expected)), expected])
        off_grid += int((~torch.isin(point.steps, steps)).sum())
    assert off_grid > 0, "some run must be read between the first pass's checkpoints (what interpolation did)"
