"""Train a bidirectional LSTM to tell whether a sequence ends with the digit it starts with.

The task needs both ends of every sequence, and the sequences have different lengths, so it
is exactly where padded batches go wrong: the answer depends on each sequence's *last real*
token, not on the padding after it. birnn takes the padded batch and the lengths (no sorting,
no packing) and ``pool("final")`` gives the classifier the forward state at the last real
token and the backward state at the first token.

    python examples/first_equals_last.py            # about half a minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import birnn


def make_batch(n: int, gen: torch.Generator, min_len: int = 3, max_len: int = 24):
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    tokens = torch.randint(0, 10, (n, max_len), generator=gen)
    same = torch.rand(n, generator=gen) < 0.5
    rows = torch.arange(n)
    last = tokens[rows, lengths - 1]
    last = torch.where(same, tokens[:, 0], torch.where(last == tokens[:, 0], (last + 1) % 10, last))
    tokens[rows, lengths - 1] = last
    tokens[torch.arange(max_len)[None, :] >= lengths[:, None]] = 10  # padding id
    labels = (tokens[:, 0] == tokens[rows, lengths - 1]).long()
    return tokens, lengths, labels


class Classifier(nn.Module):
    """Embedding -> bidirectional LSTM -> pool -> linear. ``naive=True`` shows the classic bug:
    no lengths, and ``output[:, -1]`` (a padding step) as the summary."""

    def __init__(self, hidden: int = 48, naive: bool = False):
        super().__init__()
        self.naive = naive
        self.embed = nn.Embedding(11, 16, padding_idx=10)
        self.rnn = birnn.LSTM(16, hidden, batch_first=True, bidirectional=True, forget_bias=1.0)
        self.head = nn.Linear(2 * hidden, 2)

    def forward(self, tokens, lengths):
        if self.naive:
            output, _ = self.rnn(self.embed(tokens))  # padding is read as if it were data
            return self.head(output[:, -1])
        res = self.rnn(self.embed(tokens), lengths=lengths)  # output (B, T, 2H)
        return self.head(res.pool("final"))  # (B, 2H) -> (B, 2)


def accuracy(model, data) -> float:
    model.eval()
    with torch.no_grad():
        tokens, lengths, labels = data
        return (model(tokens, lengths).argmax(-1) == labels).float().mean().item()


def train(naive: bool, args, test) -> Classifier:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = Classifier(naive=naive)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(1, args.steps + 1):
        model.train()
        tokens, lengths, labels = make_batch(args.batch, gen)
        loss = nn.functional.cross_entropy(model(tokens, lengths), labels)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == args.steps:
            print(f"  step {step:4d}  loss {loss.item():.3f}  held-out accuracy {accuracy(model, test):.3f}")
    return model


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-naive", action="store_true", help="skip the naive output[:, -1] baseline")
    args = p.parse_args(argv)
    test = make_batch(2000, torch.Generator().manual_seed(10_000 + args.seed))
    start = time.time()
    print(f"birnn.LSTM, bidirectional, lengths + pool('final'): 'first digit == last digit?' ({args.steps} steps)")
    model = train(False, args, test)
    acc = accuracy(model, test)
    tokens, lengths, labels = test
    with torch.no_grad():
        pred = model(tokens[:5], lengths[:5]).argmax(-1)
    for i in range(5):
        seq = "".join(str(int(t)) for t in tokens[i, : lengths[i]])
        print(f"  {seq:>24}  -> {'same' if pred[i] else 'different'} (truth: {'same' if labels[i] else 'different'})")
    line = f"held-out accuracy with lengths + pool('final'): {acc:.3f} (chance 0.5)"
    if not args.no_naive:
        print("the classic mistake, same model: no lengths, output[:, -1] as the summary")
        naive = accuracy(train(True, args, test), test)
        line += f"; naive output[:, -1]: {naive:.3f}"
    print(f"{line}  [{time.time() - start:.0f}s]")
    return acc


if __name__ == "__main__":
    main()
