"""Reuse in a plain SpeechBrain recipe: the modules switched in through YAML only (docs/reuse.md).

The Brain below is shaped like SpeechBrain's own VoxCeleb recipe
(recipes/VoxCeleb/SpeakerRec/train_speaker_embeddings.py: Fbank → mean norm → ECAPA-TDNN →
cosine classifier → AAM-softmax via ``compute_cost``), plus three optional hooks that read
``emotion_mask``, ``contrastive_loss`` and ``class_aware_attention`` from the hparams. The
same class trains with the baseline YAML and with the YAML that adds
``speechbrain_ext.augment.EnergyEmotionMask``, ``speechbrain_ext.losses.AngularMarginSupConLoss``
and ``speechbrain_ext.losses.ClassAwareAttention``: nothing else changes.
"""

import copy

import pytest
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

BASE_YAML = """
seed: 1986
__set_seed: !apply:torch.manual_seed [!ref <seed>]
n_mels: 40
emb_dim: 32
n_speakers: 4
lr: 0.001

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: !ref <emb_dim>

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: !ref <emb_dim>
    out_neurons: !ref <n_speakers>

epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: 1

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

compute_cost: !new:speechbrain.nnet.losses.LogSoftmaxWrapper
    loss_fn: !new:speechbrain.nnet.losses.AdditiveAngularMargin
        margin: 0.2
        scale: 30

opt_class: !name:torch.optim.Adam
    lr: !ref <lr>
"""

# What a user adds to the YAML above to train with the two papers' modules.
EXTENSION_YAML = """
emotion_mask: !new:speechbrain_ext.augment.EnergyEmotionMask
    mask_ratio: 0.2

contrastive_loss: !new:speechbrain_ext.losses.AngularMarginSupConLoss
    margin: 0.2
    temperature: 0.1

class_aware_attention: !new:speechbrain_ext.losses.ClassAwareAttention
    scale: 30.0
    normalize: True

contrastive_weight: 1.0
"""


class SpeakerBrain(sb.core.Brain):
    """VoxCeleb-style speaker-embedding Brain with optional, YAML-driven extension hooks."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        feats = self.modules.compute_features(wavs)
        feats = self.modules.mean_var_norm(feats, lens)
        emotion_mask = getattr(self.hparams, "emotion_mask", None)
        if stage == sb.Stage.TRAIN and emotion_mask is not None:
            feats, _ = emotion_mask(feats, wavs, lens)
        embeddings = self.modules.embedding_model(feats, lens)
        outputs = self.modules.classifier(embeddings)  # cosine logits [B, 1, C]
        return outputs, embeddings, lens

    def compute_objectives(self, predictions, batch, stage):
        outputs, embeddings, lens = predictions
        spkid, _ = batch.spk_id_encoded
        loss = self.hparams.compute_cost(outputs, spkid, lens)
        contrastive = getattr(self.hparams, "contrastive_loss", None)
        if stage == sb.Stage.TRAIN and contrastive is not None:
            attention = getattr(self.hparams, "class_aware_attention", None)
            weights = attention(outputs, spkid) if attention is not None else None
            loss = loss + self.hparams.contrastive_weight * contrastive(embeddings, spkid, negative_weights=weights)
        return loss

    def on_stage_end(self, stage, stage_loss, epoch=None):
        self.last_stage_loss = stage_loss


def random_batches(n_speakers=4, per_speaker=2, seed=0):
    """One batch of random 'utterances' (0.5 to 1 s), two per speaker, as PaddedBatch collates them."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n_speakers * per_speaker):
        n = int(torch.randint(8000, 16001, (1,), generator=gen))
        items.append({"id": f"utt{i}", "sig": 0.1 * torch.randn(n, generator=gen),
                      "spk_id_encoded": torch.LongTensor([i % n_speakers])})
    return torch.utils.data.DataLoader(items, batch_size=len(items), collate_fn=PaddedBatch)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("extended", [False, True], ids=["voxceleb-baseline", "with-speechbrain_ext-modules"])
def test_plain_speechbrain_brain_trains_one_step_with_modules_from_yaml(extended):
    from speechbrain_ext.augment import EnergyEmotionMask
    from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention

    hparams = load_hyperpyyaml(BASE_YAML + (EXTENSION_YAML if extended else ""))
    calls = {"emotion_mask": 0, "class_aware_attention": 0}
    if extended:
        assert isinstance(hparams["emotion_mask"], EnergyEmotionMask)
        assert isinstance(hparams["contrastive_loss"], AngularMarginSupConLoss)
        assert isinstance(hparams["class_aware_attention"], ClassAwareAttention)
        for name in calls:
            hparams[name].register_forward_hook(lambda *args, name=name: calls.__setitem__(name, calls[name] + 1))
    before = copy.deepcopy(hparams["embedding_model"].state_dict())
    brain = SpeakerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                         run_opts={"device": "cpu"})
    brain.fit(hparams["epoch_counter"], train_set=random_batches())

    assert torch.isfinite(torch.tensor(brain.last_stage_loss))
    after = hparams["embedding_model"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    if extended:
        assert calls == {"emotion_mask": 1, "class_aware_attention": 1}
        assert hparams["contrastive_loss"].last_stats["num_positive_pairs"] == 8  # 4 speakers x 2 ordered pairs
