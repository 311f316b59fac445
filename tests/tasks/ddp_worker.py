"""Train a tiny tagger for tests/tasks/test_train.py::test_ddp_equals_one_process, on one process or
under torchrun; rank 0 writes the final weights to argv[1]."""

import sys

import torch
import torch.distributed as dist

from birnn import tasks
from birnn.data import Splits
from birnn.train import TrainConfig, init_from_env
from birnn.train.checkpoint import save_weights


def data(n_train=30):
    g = torch.Generator().manual_seed(0)
    sents = []
    for _ in range(37):
        n = int(torch.randint(2, 9, (1,), generator=g))
        words = [f"w{int(v)}" for v in torch.randint(0, 15, (n,), generator=g)]
        tags = ["E" if int(w[1:]) % 2 == 0 else "O" for w in words]
        sents.append((words, tags))
    return Splits(sents[:n_train], sents[30:], [])


def main(out, run_dir, n_train="30"):
    init_from_env()
    run, records = tasks.build_run("tag", data(int(n_train)), {"layers": ["bilstm:6"], "word_dim": 5, "char_dim": 3,
                                                    "char_hidden": 3, "dropout": 0.0, "word_dropout": 0.0}, seed=0)
    initial = {k: v.clone() for k, v in run.model.state_dict().items()}
    config = TrainConfig(epochs=2, batch_size=7, lr=0.01, save_every=0, select="last", progress=False)
    tasks.train_run(run, records, config, run_dir, log=lambda s: None)
    if not dist.is_initialized() or dist.get_rank() == 0:
        save_weights(out, run.model.state_dict())
        save_weights(out + ".initial", initial)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
