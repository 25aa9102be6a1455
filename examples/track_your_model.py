"""Neural collapse and calibration of your own network, in your own training loop: a small CNN
(plain torch, defined here) trained on scikit-learn's digits under CE and label smoothing, each run
tracked by ``ufm.Tracker`` into a run folder that ``ufm plot``, ``ufm validate`` and ``ufm claims``
read. Takes a few seconds on a laptop CPU.

    python examples/track_your_model.py
"""
import tempfile
from pathlib import Path

import torch
from torch import nn

from ufm import Tracker
from ufm.dnn import load_dataset, validate
from ufm.report.validation import validation_markdown


class SmallCNN(nn.Module):
    """Two conv layers, 2x2 max pooling, a hidden linear layer (the features h, d = 32), a classifier."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                  nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU())
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(self.body(x))


data = load_dataset("digits")  # standardized 1x8x8 images, with a val split for temperature scaling
out = Path(tempfile.mkdtemp(prefix="ufm-track-"))
runs = []
for alpha in (0.0, 0.1):
    torch.manual_seed(0)
    net = SmallCNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    # features: the classifier's input (the default); "body" would hook the body's output, the same tensor
    with Tracker(net, out / f"alpha={alpha}", data=data, classifier="fc", loss="label_smoothing", alpha=alpha,
                 seed=0, model_name="SmallCNN") as tracker:
        tracker.record(0, lr=0.05)  # at initialization
        for epoch in range(1, 11):
            order = torch.randperm(len(data.y_train))
            for s in range(0, len(order), 64):
                idx = order[s:s + 64]
                loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx], label_smoothing=alpha)
                opt.zero_grad()
                loss.backward()
                opt.step()
            last = tracker.record(epoch, lr=0.05)  # {split: record}, also appended to metrics.jsonl
    tr, te = last["train"], last["test"]
    print(f"alpha={alpha}: train error {tr['error']:.3f}, test error {te['error']:.3f}, NC1 {tr['nc1']:.3g}, "
          f"NC2(means) {tr['nc2_h']:.3f}, logit gap {tr['logit_gap']:.2f}, test ECE {te['ece']:.3f} -> "
          f"{te['ece_ts']:.3f} at T = {te['temperature']:.2f}")
    runs.append(out / f"alpha={alpha}")
print()
print(validation_markdown(validate(runs)))
print(f"run folders: {out}/*  (ufm plot DIR, ufm validate DIR..., ufm claims DIR... read them)")
