"""CE against label smoothing on real data: a small MLP on scikit-learn's digits, trained twice
(alpha = 0 and 0.1) with NC metrics and calibration recorded; then the UFM's cross-run
predictions checked on the two runs. Takes a few seconds on a laptop CPU.

    python examples/train_ce_vs_ls.py
"""
import tempfile
from pathlib import Path

from ufm.dnn import TrainConfig, train, validate
from ufm.report.validation import validation_markdown

out = Path(tempfile.mkdtemp(prefix="ufm-example-"))
runs = []
for alpha in (0.0, 0.1):
    cfg = TrainConfig(dataset="digits", model="mlp", model_options={"width": 128, "depth": 2}, alpha=alpha,
                      epochs=30, batch_size=64, lr=0.05, weight_decay=5e-4, eval_every=5, seed=0)
    summary = train(cfg, out / f"alpha={alpha}", progress=False)
    tr, te = summary["final"]["train"], summary["final"]["test"]
    print(f"alpha={alpha}: train error {tr['error']:.3f}, test error {te['error']:.3f}, NC1 {tr['nc1']:.3g}, "
          f"NC2(means) {tr['nc2_h']:.3f}, test ECE {te['ece']:.3f} -> {te['ece_ts']:.3f} after temperature "
          f"scaling (T = {te['temperature']:.2f}, fitted on val)")
    runs.append(out / f"alpha={alpha}")
print()
print(validation_markdown(validate(runs)))
print(f"raw records: {out}/*/metrics.jsonl")
