"""Figures and numbers of the emotion-invariance study (methods.md B), from finished runs.

- :func:`emotion_eers` / :func:`emotion_gap_table`: EER per test emotion (trial
  conditions ``test_<emotion>``: neutral enrolment, test in ``<emotion>``; neutral test
  is ``neutral_neutral``) of one split (default: the first, ``eval``) of one or
  several ``metrics.json`` files per system (seeds), mean and standard deviation;
- :func:`plot_emotion_gap`: the "emotion gap" figure, EER per test emotion, one line
  per system (error bars across seeds);
- :func:`load_eval_embeddings`, :func:`project_2d`, :func:`plot_projection`: a 2-D PCA
  (exact SVD, no sklearn) of the cached evaluation embeddings
  (``<output_folder>/embeddings/<split>-*.pt``), coloured by speaker, marker by emotion,
  one panel per system ("before / after");
- :func:`emotion_shift`: one number per system for the same question, the mean cosine
  distance between a speaker's emotional and neutral embedding centroids (lower: more
  emotion-invariant).

Nothing here trains or scores; every input is a file a recipe run wrote.
"""

import csv
import glob
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import torch  # noqa: E402

from speechbrain_ext.report import read_metrics, split_conditions  # noqa: E402

__all__ = [
    "emotion_eers",
    "emotion_order",
    "emotion_gap_table",
    "emotion_shift",
    "load_eval_embeddings",
    "load_metrics",
    "plot_emotion_gap",
    "plot_projection",
    "project_2d",
    "read_labels",
]

CONDITION_PREFIX = "test_"
NEUTRAL = "neutral"
#: Neutral enrolment and neutral test: the neutral point of the per-emotion EERs
#: (``test_neutral`` in reports written before the trial builder stopped repeating it).
NEUTRAL_CONDITION = "neutral_neutral"
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")


def load_metrics(path_or_metrics):
    """A ``metrics.json`` (path, read by :func:`speechbrain_ext.report.read_metrics`) or a loaded dict.

    Example
    -------
    >>> load_metrics({"conditions": {}})
    {'conditions': {}}
    """
    if isinstance(path_or_metrics, dict):
        return path_or_metrics
    return read_metrics(path_or_metrics)


def emotion_order(emotions):
    """Neutral first, then the others alphabetically.

    Example
    -------
    >>> emotion_order(["sad", "neutral", "angry"])
    ['neutral', 'angry', 'sad']
    """
    emotions = sorted(set(emotions))
    return ([NEUTRAL] if NEUTRAL in emotions else []) + [e for e in emotions if e != NEUTRAL]


def emotion_eers(metrics, key="eer", split=None):
    """EER (in %) per test emotion of one run, from its ``test_<emotion>`` conditions.

    Neutral-enrolment trials with a neutral test are ``neutral_neutral`` (or, in older
    reports, ``test_neutral``).

    Arguments
    ---------
    metrics : dict or str
        A ``metrics.json`` (``{"conditions": {name: {"eer": ...}}}``) or its path.
    key : str
        The metric (``"eer"``, in % in the output, or ``"min_dcf"``, unchanged).
    split : str or None
        The evaluation split (default: the first, the top-level ``conditions``).

    Returns
    -------
    dict
        ``{emotion: value}``, neutral first.

    Example
    -------
    >>> m = {"conditions": {"all": {"eer": 0.1}, "test_sad": {"eer": 0.2}, "neutral_neutral": {"eer": 0.05}}}
    >>> emotion_eers(m)
    {'neutral': 5.0, 'sad': 20.0}
    """
    conditions = dict(split_conditions(load_metrics(metrics), split))
    neutral = CONDITION_PREFIX + NEUTRAL
    if neutral not in conditions and NEUTRAL_CONDITION in conditions and any(
            c.startswith(CONDITION_PREFIX) for c in conditions):
        conditions[neutral] = conditions[NEUTRAL_CONDITION]
    emotions = [c[len(CONDITION_PREFIX) :] for c in conditions if c.startswith(CONDITION_PREFIX)]
    scale = 100.0 if key == "eer" else 1.0
    return {e: scale * conditions[CONDITION_PREFIX + e][key] for e in emotion_order(emotions)}


def _mean_std(values):
    """Mean and sample standard deviation (0 for a single value).

    Example
    -------
    >>> _mean_std([1.0, 3.0])
    (2.0, 1.4142135623730951)
    """
    values = list(values)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def emotion_gap_table(systems, key="eer", split=None):
    """Mean and std across runs of the per-emotion EER of several systems.

    Arguments
    ---------
    systems : dict
        ``{system label: [metrics.json path or dict, ...]}`` (one entry per seed).
    key : str
        ``"eer"`` (in %) or ``"min_dcf"``.
    split : str or None
        The evaluation split (default: the first).

    Returns
    -------
    dict
        ``{label: {emotion: (mean, std, n_runs)}}``; an emotion missing from some runs
        averages the runs that have it.

    Example
    -------
    >>> a = {"conditions": {"test_neutral": {"eer": 0.1}, "test_sad": {"eer": 0.3}}}
    >>> b = {"conditions": {"test_neutral": {"eer": 0.1}, "test_sad": {"eer": 0.1}}}
    >>> emotion_gap_table({"base": [a, b]})["base"]["sad"]
    (20.0, 14.142135623730951, 2)
    """
    table = {}
    for label, runs in systems.items():
        per_emotion = {}
        for run in runs:
            for emotion, value in emotion_eers(run, key, split).items():
                per_emotion.setdefault(emotion, []).append(value)
        table[label] = {
            e: (*_mean_std(per_emotion[e]), len(per_emotion[e])) for e in emotion_order(per_emotion)
        }
    return table


def plot_emotion_gap(systems, path, title="EER per test emotion (neutral enrolment)", key="eer", split=None):
    """Write the emotion-gap figure: EER per test emotion, one line per system, error bars across seeds.

    Arguments
    ---------
    systems : dict
        ``{system label: [metrics.json path or dict, ...]}``.
    path : str
        The PNG to write (its folder is created).
    title : str
        Figure title.
    key : str
        ``"eer"`` or ``"min_dcf"``.
    split : str or None
        The evaluation split (default: the first).

    Returns
    -------
    dict
        The :func:`emotion_gap_table` plotted.

    Example
    -------
    >>> import tempfile, os
    >>> m = {"conditions": {"test_neutral": {"eer": 0.1}, "test_sad": {"eer": 0.3}}}
    >>> p = os.path.join(tempfile.mkdtemp(), "gap.png")
    >>> table = plot_emotion_gap({"baseline": [m], "ours": [m]}, p)
    >>> os.path.getsize(p) > 0, list(table["ours"])
    (True, ['neutral', 'sad'])
    """
    table = emotion_gap_table(systems, key, split)
    emotions = emotion_order({e for rows in table.values() for e in rows})
    fig, ax = plt.subplots(figsize=(1.3 * len(emotions) + 3, 4))
    offset = 0.06 * (len(table) - 1)
    for i, (label, rows) in enumerate(table.items()):
        xs = [emotions.index(e) + (i * 0.12 - offset) for e in rows]
        means = [rows[e][0] for e in rows]
        stds = [rows[e][1] for e in rows]
        ax.errorbar(xs, means, yerr=stds, marker=_MARKERS[i % len(_MARKERS)], capsize=3, label=label)
    ax.set_xticks(range(len(emotions)))
    ax.set_xticklabels(emotions)
    ax.set_xlabel("test emotion")
    ax.set_ylabel("EER (%)" if key == "eer" else key)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return table


def load_eval_embeddings(output_folder, split="eval"):
    """The cached evaluation embeddings of a run's split: ``(ids, embeddings [N, D])``.

    Reads the newest ``<output_folder>/embeddings/<split>-*.pt`` (one per checkpoint and
    manifest; written by :func:`speechbrain_ext.evaluation.evaluate`).

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "embeddings"))
    >>> torch.save({"ids": ["a"], "embeddings": torch.ones(1, 3)}, os.path.join(d, "embeddings", "eval-x.pt"))
    >>> load_eval_embeddings(d)[1].shape
    torch.Size([1, 3])
    """
    files = glob.glob(os.path.join(glob.escape(output_folder), "embeddings", f"{glob.escape(split)}-*.pt"))
    if not files:
        raise FileNotFoundError(f"no cached evaluation embeddings (embeddings/{split}-*.pt) in {output_folder}")
    cached = torch.load(max(files, key=os.path.getmtime), weights_only=True)
    return list(cached["ids"]), cached["embeddings"].float()


def read_labels(manifest, columns=("spk_id", "emotion")):
    """``{id: (spk_id, emotion)}`` from a manifest such as ``eval.csv``.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "eval.csv")
    >>> _ = open(p, "w").write("ID,duration,wav,spk_id,emotion\\na,1,x.wav,S1,sad\\n")
    >>> read_labels(p)
    {'a': ('S1', 'sad')}
    """
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("ID", *columns) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest} lacks column(s) {missing}")
        return {row["ID"]: tuple(row[c] for c in columns) for row in reader}


def project_2d(embeddings):
    """2-D PCA of L2-normalised embeddings by exact SVD (deterministic signs).

    Each axis is oriented so that its largest-magnitude loading is positive, so the
    same embeddings always give the same picture.

    Returns
    -------
    points : torch.Tensor
        ``[N, 2]``.
    explained : list of float
        Share of the variance of each of the two axes.

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    >>> points, explained = project_2d(x)
    >>> points.shape, round(sum(explained), 6) <= 1.0
    (torch.Size([4, 2]), True)
    """
    x = torch.nn.functional.normalize(embeddings.double(), dim=1)
    x = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    axes = vh[:2]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    axes = axes * torch.where(signs == 0, torch.ones_like(signs), signs)
    var = s**2
    explained = (var[:2] / var.sum().clamp_min(1e-30)).tolist()
    return (x @ axes.T).float(), explained


def emotion_shift(ids, embeddings, labels, neutral=NEUTRAL):
    """Mean cosine distance between each speaker's emotional and neutral embedding centroids.

    For every speaker and non-neutral emotion: ``1 - cos(c_{s,e}, c_{s,neutral})`` with
    ``c`` the mean of L2-normalised embeddings; the mean over (speaker, emotion) pairs.
    Lower is more emotion-invariant. ``nan`` when no speaker has neutral and emotional
    utterances.

    Arguments
    ---------
    ids : list of str
    embeddings : torch.Tensor
        ``[N, D]`` aligned with ``ids``.
    labels : dict
        ``{id: (speaker, emotion)}`` (e.g. :func:`read_labels`).
    neutral : str
        The neutral emotion's name.

    Example
    -------
    >>> emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> emotion_shift(["a", "b"], emb, {"a": ("S1", "neutral"), "b": ("S1", "sad")})
    1.0
    """
    emb = torch.nn.functional.normalize(embeddings.double(), dim=1)
    groups = {}
    for row, utt in enumerate(ids):
        if utt in labels:
            groups.setdefault(labels[utt], []).append(row)
    centroid = {key: emb[rows].mean(dim=0) for key, rows in groups.items()}
    dists = []
    for (spk, emotion), c in centroid.items():
        ref = centroid.get((spk, neutral))
        if emotion != neutral and ref is not None:
            dists.append(1.0 - float(torch.nn.functional.cosine_similarity(c, ref, dim=0)))
    return sum(dists) / len(dists) if dists else float("nan")


def plot_projection(systems, manifest, path, title="Evaluation embeddings, 2-D PCA", max_speakers=20):
    """Write a figure with one 2-D PCA panel per system: colour = speaker, marker = emotion.

    Arguments
    ---------
    systems : dict
        ``{panel label: output_folder of a finished run}`` (e.g. before / after).
    manifest : str
        The evaluation manifest (``eval.csv``) giving each id's speaker and emotion.
    path : str
        The PNG to write.
    title : str
        Figure title.
    max_speakers : int
        Plot the first ``max_speakers`` speakers (sorted) only, to keep colours distinct.

    Returns
    -------
    dict
        ``{panel label: {"explained": [share 1, share 2], "emotion_shift": float}}``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "embeddings"))
    >>> ids = [f"u{i}" for i in range(8)]
    >>> torch.save({"ids": ids, "embeddings": torch.randn(8, 4)}, os.path.join(d, "embeddings", "eval-x.pt"))
    >>> m = os.path.join(d, "eval.csv")
    >>> with open(m, "w") as f:
    ...     _ = f.write("ID,duration,wav,spk_id,emotion\\n")
    ...     for i, u in enumerate(ids):
    ...         _ = f.write(f"{u},1,x.wav,S{i % 2},{('neutral', 'sad')[i // 4]}\\n")
    >>> info = plot_projection({"before": d, "after": d}, m, os.path.join(d, "proj.png"))
    >>> sorted(info), sorted(info["after"])
    (['after', 'before'], ['emotion_shift', 'explained'])
    """
    labels = read_labels(manifest)
    speakers = sorted({spk for spk, _ in labels.values()})[:max_speakers]
    emotions = emotion_order({emo for _, emo in labels.values()})
    cmap = plt.get_cmap("tab20" if len(speakers) > 10 else "tab10")
    colour = {spk: cmap(i % cmap.N) for i, spk in enumerate(speakers)}
    marker = {emo: _MARKERS[i % len(_MARKERS)] for i, emo in enumerate(emotions)}
    fig, axes = plt.subplots(1, len(systems), figsize=(5.2 * len(systems), 5), squeeze=False)
    info = {}
    for ax, (label, folder) in zip(axes[0], systems.items()):
        ids, emb = load_eval_embeddings(folder)
        keep = [i for i, utt in enumerate(ids) if utt in labels and labels[utt][0] in colour]
        points, explained = project_2d(emb[keep])
        kept_ids = [ids[i] for i in keep]
        shift = emotion_shift(ids, emb, labels)
        info[label] = {"explained": explained, "emotion_shift": shift}
        for emo in emotions:
            rows = [j for j, utt in enumerate(kept_ids) if labels[utt][1] == emo]
            if not rows:
                continue
            ax.scatter(
                points[rows, 0], points[rows, 1], c=[colour[labels[kept_ids[j]][0]] for j in rows],
                marker=marker[emo], s=22, alpha=0.8, linewidths=0.3, edgecolors="k",
            )
        ax.set_title(f"{label}\nemotion shift {shift:.3f}", fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f} %)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f} %)")
        ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], linestyle="", marker=marker[e], color="0.3", label=e) for e in emotions
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(emotions), fontsize=8, title="marker: emotion")
    fig.suptitle(f"{title} (colour: speaker)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return info
