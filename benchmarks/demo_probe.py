"""What the `layerkd demo` teacher's layers carry: a linear probe on its [CLS] vector per layer.

For each layer (0 = embeddings) a logistic regression (scikit-learn defaults, max_iter 2000) is
fitted on the demo's train.tsv and scored on dev.tsv for three targets: the adjective's polarity,
the parity of the negators (not/never/hardly), and the label (their XOR). docs/demo.md records
the numbers for the demo's default run (seed 0) and seed 1.

    python benchmarks/demo_probe.py layerkd-demo
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from layerkd import toy


def rows(path: Path) -> tuple[list[str], np.ndarray]:
    pairs = [ln.split("\t") for ln in path.read_text(encoding="utf-8").splitlines()[1:] if ln]
    return [t for t, _ in pairs], np.array([int(y) for _, y in pairs])


def main(demo: Path) -> None:
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(demo / "teacher")
    model = AutoModel.from_pretrained(demo / "teacher", output_hidden_states=True).eval()

    def cls_vectors(texts: list[str]) -> list[np.ndarray]:
        with torch.no_grad():
            states = model(**tok(texts, padding=True, return_tensors="pt")).hidden_states
        return [h[:, 0].numpy() for h in states]

    def targets(texts: list[str], labels: np.ndarray) -> dict[str, np.ndarray]:
        adjective = np.array([int(any(w in toy.POSITIVE for w in t.split())) for t in texts])
        negation = np.array([sum(w in toy.NEGATORS for w in t.split()) % 2 for t in texts])
        return {"adjective": adjective, "negation parity": negation, "label": labels}

    train, dev = rows(demo / "data" / "train.tsv"), rows(demo / "data" / "dev.tsv")
    xt, xd = cls_vectors(train[0]), cls_vectors(dev[0])
    yt, yd = targets(*train), targets(*dev)
    print("layer | " + " | ".join(yt))
    for layer in range(len(xt)):
        scores = [LogisticRegression(max_iter=2000).fit(xt[layer], yt[k]).score(xd[layer], yd[k]) for k in yt]
        print(f"{layer} | " + " | ".join(f"{s:.2f}" for s in scores))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "layerkd-demo"))
