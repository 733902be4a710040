#!/usr/bin/env python3
"""Train and evaluate a speaker-embedding system on the embedded SynthEmo corpus.

    python recipes/SynthEmo/train.py recipes/SynthEmo/hparams/ecapa_aam.yaml [--number_of_epochs 2]

The system (Brain, losses, balancer, augmentation) is chosen by the hparams file;
see recipes/SynthEmo/README.md.
"""

from speechbrain_ext.recipe import main

if __name__ == "__main__":
    main()
