#!/usr/bin/env python3
"""Train and evaluate a speaker-embedding system on CN-Celeb (CN-Celeb1 dev + CN-Celeb2 -> CN-Celeb1 eval).

    python recipes/CNCeleb/train.py recipes/CNCeleb/hparams/ecapa_aam.yaml --data_folder /data/CN-Celeb \
        --musan_folder /data/musan --rir_folder /data/RIRS_NOISES
    torchrun --nproc_per_node=4 recipes/CNCeleb/train.py recipes/CNCeleb/hparams/ecapa_aam.yaml ...

The system (Brain, losses, balancer, augmentation) is chosen by the hparams file;
see recipes/CNCeleb/README.md.
"""

from speechbrain_ext.recipe import main

if __name__ == "__main__":
    main()
