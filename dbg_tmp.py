import dataclasses, torch, numpy as np
from dlncheck import presets, train, Init, spectra
from dlncheck.theory import trap
base = presets.experiment("saddle","fullrank",2)
exp = dataclasses.replace(base, init=Init("balanced", base.init.scale, seed=0), steps=2*base.steps, sgd_runs=0)
tr = train(exp, checkpoints=80)
W = spectra.end_to_end(tr.weights)[0]
T = exp.teacher
Wt = T.U.T @ W @ T.V
for k in range(40, 81, 3):
    print("%.2f"%(tr.checkpoint_steps[k]*exp.lr), "det %.3e"%torch.linalg.det(W[k]), "smin %.3e"%spectra.singular_values(W[k])[-1], "u44 %.3e"%Wt[k,3,3], "loss %.6f"%(0.5*(W[k]-T.M).pow(2).sum()))
W1, W2 = tr.weights[0][0, -1], tr.weights[1][0, -1]
print("imbalance", torch.linalg.norm(W2.T@W2 - W1@W1.T))
print(torch.linalg.svdvals(W1), torch.linalg.svdvals(W2))
