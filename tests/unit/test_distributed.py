"""Data-parallel training on CPU (gloo, 2 processes): gathered contrastive loss, MGDA alpha, sampler ranks.

Two processes are spawned once for the module; each trains one step of a tiny
encoder + classifier wrapped in DistributedDataParallel on its half of a batch, with
the contrastive term of ContrastiveSpeakerBrain (``contrastive_gather: True``), and
reports its loss values, MGDA's alpha and the DDP-averaged parameter gradients. The
reference is one process on the concatenated batch, without DDP and without gather.
"""

import functools
import os
from types import SimpleNamespace

import pytest
import torch
from gloo_ranks import spawn_ranks

WORLD = 2
N_PER_RANK = 8  # 4 speakers x 2 utterances per rank
FEATS, DIM, CLASSES = 6, 5, 16
TOL = 1e-6


def make_problem():
    """Deterministic float64 data and modules: (x [N, F], labels [N], encoder, classifier)."""
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(WORLD * N_PER_RANK, FEATS, generator=gen, dtype=torch.float64)
    # rank r holds speakers 4r..4r+3, two utterances each (as the P x K sampler gives them)
    labels = torch.arange(WORLD * N_PER_RANK // 2).repeat_interleave(2)
    torch.manual_seed(99)
    encoder = torch.nn.Linear(FEATS, DIM).double()
    classifier = Classifier(input_size=DIM, out_neurons=CLASSES).double()
    return x, labels, encoder, classifier


def brain_stub(gather):
    from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention
    from speechbrain_ext.resume import EpochStats

    hparams = SimpleNamespace(
        contrastive_loss=AngularMarginSupConLoss(margin=0.2, temperature=0.1),
        class_aware_attention=ClassAwareAttention(scale=30.0),
        contrastive_gather=gather,
    )
    return SimpleNamespace(hparams=hparams, epoch_stats=EpochStats(), batch_sampler=None)


def train_step(encoder, classifier, x, labels, balancer_name, gather):
    """One step: returns (contrastive loss, aam loss, stats); gradients are left in the modules."""
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

    from speechbrain_ext.balancing import FixedWeights, MGDABalancer
    from speechbrain_ext.brains.contrastive import ContrastiveSpeakerBrain

    aam_loss = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    balancer = MGDABalancer() if balancer_name == "mgda" else FixedWeights({"aam": 1.0, "contrastive": 1.0})
    embeddings = encoder(x)[:, None, :]
    logits = classifier(embeddings)
    losses = {
        "aam": aam_loss(logits, labels[:, None]),
        "contrastive": ContrastiveSpeakerBrain.contrastive_term(brain_stub(gather), embeddings, logits, labels),
    }
    total, stats = balancer(losses, embeddings)
    for module in (encoder, classifier):
        module.zero_grad()
    total.backward()
    return float(losses["contrastive"].detach()), float(losses["aam"].detach()), stats


def grads(*modules):
    return {f"{i}.{name}": p.grad.detach().clone() for i, m in enumerate(modules) for name, p in m.named_parameters()}


def sampler_check(rank, tmp_dir):
    """Build the training loader of a real SpeakerBrain under DDP; return the speakers of each step."""
    import speechbrain as sb
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.utils.checkpoints import Checkpointer

    from speechbrain_ext import data as sx_data
    from speechbrain_ext.brains.speaker import SpeakerBrain
    from speechbrain_ext.sampling import SpeakerBalancedBatchSampler

    speakers = [f"s{i:02d}" for i in range(10)]
    data = {f"{spk}_{k}": {"spk_id": spk} for spk in speakers for k in range(3)}
    dataset = DynamicItemDataset(data)
    hparams = {
        "train_dataloader_opts": {"batch_size": 4, "num_workers": 0, "drop_last": True},
        "train_sampler": functools.partial(SpeakerBalancedBatchSampler, speakers_per_batch=2, utterances_per_speaker=2),
        "seed": 7,
    }
    brain = SpeakerBrain(
        modules={"lin": torch.nn.Linear(2, 2)},
        hparams=hparams,
        run_opts={"device": "cpu", "distributed_backend": "gloo"},
        checkpointer=Checkpointer(os.path.join(tmp_dir, f"ckpt{rank}")),
    )
    options = brain.train_loader_options(dataset)
    loader = brain.make_dataloader(dataset, sb.Stage.TRAIN, **options)
    sampler = brain.train_sampler
    assert isinstance(sampler, SpeakerBalancedBatchSampler), type(sampler)
    assert loader.batch_sampler is sampler and (sampler.rank, sampler.world_size) == (rank, WORLD)
    assert options["collate_fn"] is sx_data.collate_skipping
    sampler.set_epoch(3)
    labels = sx_data.manifest_column(dataset, "spk_id")
    return [sorted({labels[i] for i in batch}) for batch in loader.batch_sampler]


def worker(rank, out_dir):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from speechbrain_ext import distributed as sx_distributed

    x, labels, encoder, classifier = make_problem()
    local = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
    ddp_encoder, ddp_classifier = DDP(encoder), DDP(classifier)
    result = {}
    for balancer in ("fixed", "mgda"):
        con, aam, stats = train_step(ddp_encoder, ddp_classifier, x[local], labels[local], balancer, gather=True)
        result[balancer] = {"contrastive": con, "aam": aam, "stats": stats, "grads": grads(encoder, classifier)}
    result["local_contrastive"] = train_step(
        ddp_encoder, ddp_classifier, x[local], labels[local], "fixed", gather=False
    )[0]
    result["sampler_steps"] = sampler_check(rank, out_dir)
    # one rank's batch all unreadable: every rank learns it (and skips the step together)
    result["any_rank"] = [sx_distributed.any_rank(rank == 1), sx_distributed.any_rank(False)]
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    spawn_ranks(worker, str(out), str(out), world=WORLD)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def reference():
    x, labels, encoder, classifier = make_problem()
    result = {}
    for balancer in ("fixed", "mgda"):
        con, aam, stats = train_step(encoder, classifier, x, labels, balancer, gather=True)  # no group: no gather
        result[balancer] = {"contrastive": con, "aam": aam, "stats": stats, "grads": grads(encoder, classifier)}
    return result


@pytest.mark.parametrize("balancer", ["fixed", "mgda"])
def test_gathered_loss_and_gradients_equal_the_single_process_ones(ranks, reference, balancer):
    ref = reference[balancer]
    for result in ranks:
        got = result[balancer]
        assert got["contrastive"] == pytest.approx(ref["contrastive"], abs=TOL)
        for name, grad in ref["grads"].items():
            assert torch.allclose(got["grads"][name], grad, rtol=0, atol=TOL), name
    # the per-rank AAM terms average to the global one (equal batch sizes)
    assert sum(r[balancer]["aam"] for r in ranks) / WORLD == pytest.approx(ref["aam"], abs=TOL)


def test_without_gather_the_negatives_stay_local(ranks, reference):
    assert all(abs(r["local_contrastive"] - reference["fixed"]["contrastive"]) > 1e-3 for r in ranks)


def test_mgda_alpha_is_identical_on_every_rank_and_equals_the_single_process_alpha(ranks, reference):
    alphas = [r["mgda"]["stats"]["alpha"] for r in ranks]
    assert alphas[0] == alphas[1]
    assert 0.0 < alphas[0] < 1.0  # a genuine trade-off, not a clipped corner
    assert alphas[0] == pytest.approx(reference["mgda"]["stats"]["alpha"], abs=TOL)


def test_speaker_balanced_sampler_gives_ranks_disjoint_speakers(ranks):
    steps = [r["sampler_steps"] for r in ranks]
    assert len(steps[0]) == len(steps[1]) > 0
    for a, b in zip(*steps):
        assert len(a) == len(b) == 2 and not set(a) & set(b)
    seen = {spk for rank_steps in steps for step in rank_steps for spk in step}
    assert len(seen) == 10  # every speaker is visited in the epoch


def test_an_empty_batch_on_one_rank_is_seen_by_every_rank(ranks):
    assert [r["any_rank"] for r in ranks] == [[True, False], [True, False]]
