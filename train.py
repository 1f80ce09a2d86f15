"""Train the encoder with Lightning: ``python train.py fit --config configs/default.yaml``.

See ``python train.py --help`` and ``python train.py fit --help``; configs live in ``configs/``."""

from vsa_vision.training import cli_main

if __name__ == "__main__":
    cli_main()
