"""A small real experiment: a NumPy MLP learns to separate three interleaved
spirals. Run it on its own (`python train.py --lr 0.3`) or under
`labbook run`, which wraps it and captures its output; either way it logs
its curves with the labbook SDK.
"""

from __future__ import annotations

import argparse

import numpy as np

import labbook


def spirals(
    n_per_class: int, classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.25, n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--why", default="Baseline: how well does a 1-hidden-layer MLP fit three spirals?"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    x, y = spirals(200, 3, rng)
    order = rng.permutation(len(x))
    split = int(0.8 * len(x))
    train, val = order[:split], order[split:]

    config = {
        "lr": args.lr,
        "model": {"hidden": args.hidden, "act": "tanh"},
        "epochs": args.epochs,
        "seed": args.seed,
    }
    run = labbook.init(project="spirals", config=config, notes=args.why)

    w1 = rng.normal(0, 1.0, (2, args.hidden))
    b1 = np.zeros(args.hidden)
    w2 = rng.normal(0, 1.0 / np.sqrt(args.hidden), (args.hidden, 3))
    b2 = np.zeros(3)

    def forward(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.tanh(inputs @ w1 + b1)
        logits = h @ w2 + b2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return h, p / p.sum(axis=1, keepdims=True)

    def loss_acc(p: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        loss = -np.log(p[np.arange(len(labels)), labels] + 1e-12).mean()
        return float(loss), float((p.argmax(axis=1) == labels).mean())

    best_val = 0.0
    for epoch in range(args.epochs):
        h, p = forward(x[train])
        train_loss, train_acc = loss_acc(p, y[train])
        grad = p.copy()
        grad[np.arange(len(train)), y[train]] -= 1
        grad /= len(train)
        gw2, gb2 = h.T @ grad, grad.sum(axis=0)
        gh = grad @ w2.T * (1 - h**2)
        gw1, gb1 = x[train].T @ gh, gh.sum(axis=0)
        for param, g in ((w1, gw1), (b1, gb1), (w2, gw2), (b2, gb2)):
            param -= args.lr * g

        _, pv = forward(x[val])
        val_loss, val_acc = loss_acc(pv, y[val])
        best_val = max(best_val, val_acc)
        run.log(
            {
                "train/loss": train_loss,
                "train/acc": train_acc,
                "val/loss": val_loss,
                "val/acc": val_acc,
            }
        )
        if epoch % 100 == 0 or epoch == args.epochs - 1:
            print(
                f"epoch {epoch:4d}  train/loss {train_loss:.4f}  val/acc {val_acc:.3f}", flush=True
            )

    run.summary["best_val_acc"] = best_val
    run.finish()


if __name__ == "__main__":
    main()
