#!/usr/bin/env python3
"""Train and evaluate a speaker-embedding system on an emotional corpus (ESD, CREMA-D, RAVDESS, Dusha).

    python recipes/EmoSpeech/train.py recipes/EmoSpeech/hparams/ecapa_aam_copypaste_cos_em.yaml \
        --corpus esd --data_folder /data/ESD --pretrained_encoder results/VoxCeleb/ecapa_aam/seed1986 \
        --musan_folder /data/musan --rir_folder /data/RIRS_NOISES
    torchrun --nproc_per_node=4 recipes/EmoSpeech/train.py ...

The system (Brain, losses, balancer, augmentation) is chosen by the hparams file;
see recipes/EmoSpeech/README.md.
"""

from speechbrain_ext.recipe import main

if __name__ == "__main__":
    main()
