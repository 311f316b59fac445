"""The fused kernel against cuDNN, as measured on a GPU: the table ``birnn.dispatch`` reads to
decide whether ``path="auto"`` runs the fused kernel. Written by ``birnn bench --table`` (the
same as ``benchmarks/gpu.py --table``) on the device; edit only by measuring again.

Rows: (cell, dtype, B, T, H, step, lengths, cuDNN us/(step*layer), fused us/(step*layer)),
bidirectional, 2 layers, I=256.
"""

DEVICE = ("NVIDIA H100 80GB HBM3, torch 2.11.0+cu130, Triton 3.6.0, cuDNN 91900, 2026-11-22 "
          "(benchmarks/device/gpu_final2.txt)")
KERNEL = "stream"
MEASURED = (
    ("LSTM", "float32", 1, 512, 512, "infer", "equal", 29.1, 9.3),
    ("LSTM", "float32", 64, 512, 512, "infer", "equal", 46.0, 20.4),
    ("LSTM", "float32", 64, 512, 512, "train", "equal", 90.0, 63.6),
    ("LSTM", "float32", 64, 512, 512, "train", "random", 114.7, 65.1),
    ("GRU", "float32", 1, 512, 512, "infer", "equal", 29.2, 7.7),
    ("GRU", "float32", 64, 512, 512, "train", "equal", 92.4, 52.6),
    ("LSTM", "float32", 8, 512, 128, "train", "equal", 8.4, 12.4),
    ("LSTM", "float32", 8, 512, 1024, "infer", "equal", 49.8, 18.5),
    ("LSTM", "float32", 256, 128, 512, "train", "equal", 112.4, 184.3),
    ("LSTM", "bfloat16", 1, 512, 512, "infer", "equal", 39.0, 8.1),
    ("LSTM", "bfloat16", 64, 512, 512, "infer", "equal", 38.6, 11.9),
    ("LSTM", "bfloat16", 64, 512, 512, "train", "equal", 84.5, 39.9),
    ("LSTM", "bfloat16", 64, 512, 512, "train", "random", 111.7, 39.6),
    ("GRU", "bfloat16", 1, 512, 512, "infer", "equal", 38.1, 5.7),
    ("GRU", "bfloat16", 64, 512, 512, "train", "equal", 84.0, 33.0),
    ("LSTM", "bfloat16", 8, 512, 128, "train", "equal", 82.7, 12.3),
    ("LSTM", "bfloat16", 8, 512, 1024, "infer", "equal", 44.2, 16.7),
    ("LSTM", "bfloat16", 256, 128, 512, "train", "equal", 90.9, 99.7),
)
