#!/usr/bin/env python3
"""Train and evaluate a speaker-embedding system on VoxCeleb (VoxCeleb2 dev [+ VoxCeleb1 dev] -> Vox1-O/E/H).

    python recipes/VoxCeleb/train.py recipes/VoxCeleb/hparams/ecapa_aam.yaml --data_folder /data/VoxCeleb \
        --musan_folder /data/musan --rir_folder /data/RIRS_NOISES
    torchrun --nproc_per_node=4 recipes/VoxCeleb/train.py recipes/VoxCeleb/hparams/ecapa_aam.yaml ...

The system (Brain, losses, balancer, augmentation) is chosen by the hparams file;
see recipes/VoxCeleb/README.md.
"""

from speechbrain_ext.recipe import main

if __name__ == "__main__":
    main()
