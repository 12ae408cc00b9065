"""Train the gated multimodal sentiment model (the same as ``msa-train`` once installed).

The code is `msa/training/experiment.py` (flags, data and config, model and loop per seed, results);
``python train.py --help`` lists every flag. Examples::

    python train.py --data data/mosi/label.csv --seeds 1111,1112,1113 --run-dir runs/mosi-text
    python train.py --videos /path/to/MOSI/Raw --labels data/mosi/label.csv --run-dir runs/mosi-video
    torchrun --standalone --nproc-per-node 4 train.py --device cuda --data ... --run-dir runs/x  # 4 GPUs
"""

import sys

from msa.training.experiment import main

if __name__ == "__main__":
    sys.exit(main())
