"""The emotional corpora (ESD, CREMA-D, RAVDESS, Dusha) from one template.

A corpus is described as data, an :class:`EmotionalCorpus`: its name and release,
how its layout is read (``walk``: a :class:`NamedFiles` walk with a
:class:`FileNamePattern` where the file name carries the labels, a function where
transcripts or markup files do), how a user-given speaker is written, and its
default split. :func:`prepare_emotional` then runs the same steps for every corpus:

1. walk the layout into items (``ID``, ``path``, ``spk_id``, ``emotion``, ``text``),
   counting what does not follow the convention, and drop the files the corpus's
   documentation declares unusable (:func:`drop_known_unusable`);
2. keep the requested emotions (:func:`filter_emotions`);
3. choose the evaluation speakers (given, a seeded number, or the default split);
4. read the durations and build manifest rows (unreadable audio: counted skips);
5. hold out ``n_valid_speakers`` validation speakers (round-robin over the
   corpus's strata, e.g. language or gender);
6. write ``train.csv``, ``valid.csv``, ``eval.csv`` with ``emotion`` and ``text``
   columns, and the trial conditions of :func:`data_prep.common.emotion_trials` for
   ``valid`` and ``eval``;
7. return the summary (counts, speakers, trials, skips), all under
   :func:`data_prep.corpus_utils.run_preparation` (lock, idempotence, marker).
"""

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Mapping

from data_prep.common import PreparationError, emotion_trials, write_manifest
from data_prep.corpus_utils import (
    SkipLog,
    clean_text,
    is_hidden_file,
    pick_valid_speakers,
    read_durations,
    root_relative,
    run_preparation,
    split_summary,
    write_conditions,
)

EMOTION_COLUMNS = ("emotion", "text")
SPLITS = ("train", "valid", "eval")


@dataclasses.dataclass
class Walk:
    """What reading a corpus layout found.

    Attributes
    ----------
    items : list of dict
        One per audio file: ``ID``, ``path`` (absolute), ``spk_id``, ``emotion``, ``text``.
    summary : dict
        Corpus-specific counts merged into the preparation summary.
    eval_speakers : collection of str or None
        Evaluation speakers the layout itself designates (Dusha: those of
        ``crowd_test``), used when the options name none.

    Example
    -------
    >>> Walk([{"ID": "a"}]).summary, Walk([]).eval_speakers
    ({}, None)
    """

    items: list
    summary: dict = dataclasses.field(default_factory=dict)
    eval_speakers: object = None


@dataclasses.dataclass(frozen=True)
class FileNamePattern:
    """A file-name convention that carries the labels (CREMA-D, RAVDESS).

    Attributes
    ----------
    regex : str
        Full match of a file name, one named group per field.
    values : mapping
        ``{field: {code: value}}``: a code outside the map makes the name invalid;
        the value replaces the code (e.g. ``{"emotion": {"ANG": "angry", ...}}``).
    speaker : str
        ``str.format`` template of the speaker id over the fields (``"Actor_{actor}"``).
    text : str
        Field used as the sentence key (enrolment and test never share it).
    keep : mapping
        ``{field: value}`` a file must have to be used (RAVDESS: audio-only speech).
    filtered_kind : str
        Skip kind of the files that ``keep`` leaves out.

    Example
    -------
    >>> p = FileNamePattern(r"(?P<spk>\\d+)_(?P<emotion>[A-Z]+)\\.wav", {"emotion": {"SAD": "sad"}}, "s{spk}", "spk")
    >>> p.parse("7_SAD.wav"), p.parse("7_BOR.wav")
    ({'spk': '7', 'emotion': 'sad'}, None)
    >>> p.item("7_SAD", "/c/7_SAD.wav", p.parse("7_SAD.wav"))["spk_id"]
    's7'
    """

    regex: str
    values: Mapping
    speaker: str
    text: str
    keep: Mapping = dataclasses.field(default_factory=dict)
    filtered_kind: str = "filtered"

    def parse(self, name):
        """The fields of ``name`` (codes replaced by their values), or ``None``."""
        match = re.fullmatch(self.regex, name)
        if not match:
            return None
        fields = match.groupdict()
        for field, table in self.values.items():
            if fields[field] not in table:
                return None
            fields[field] = table[fields[field]]
        return fields

    def item(self, stem, path, fields):
        """The walk item of a parsed file."""
        return {
            "ID": stem,
            "path": path,
            "spk_id": self.speaker.format(**fields),
            "emotion": fields["emotion"],
            "text": fields[self.text],
        }


@dataclasses.dataclass(frozen=True)
class NamedFiles:
    """Walk of corpora whose labels are in the file names: ``.wav`` files (any case of
    the extension) directly in the folders that ``folders(data_folder)`` lists (it
    raises, naming the path, when the layout is not there), parsed by ``pattern``.
    macOS metadata files (``._*``) are not audio and are ignored.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for name in ("7_SAD.wav", "7_BOR.wav", "notes.txt", "._7_SAD.wav"):
    ...     _ = open(os.path.join(d, name), "w").write("")
    >>> pattern = FileNamePattern(r"(?P<spk>\\d+)_(?P<emotion>[A-Z]+)\\.wav", {"emotion": {"SAD": "sad"}}, "{spk}",
    ...                           "spk")
    >>> skips = SkipLog()
    >>> walk = NamedFiles(lambda root: [root], pattern)(d, {}, skips)
    >>> [it["ID"] for it in walk.items], dict(skips.counts)
    (['7_SAD'], {'unparsed_name': 1})
    """

    folders: Callable
    pattern: FileNamePattern

    def __call__(self, data_folder, options, skips):
        """Read the layout under ``data_folder``; return a :class:`Walk`."""
        items = []
        for folder in self.folders(data_folder):
            for name in sorted(os.listdir(folder)):
                path = os.path.join(folder, name)
                if not name.lower().endswith(".wav") or is_hidden_file(name) or not os.path.isfile(path):
                    continue
                fields = self.pattern.parse(name[:-4] + ".wav")
                if fields is None:
                    skips.add("unparsed_name", path)
                elif any(fields[k] != v for k, v in self.pattern.keep.items()):
                    skips.add(self.pattern.filtered_kind, path)
                else:
                    items.append(self.pattern.item(name[:-4], path, fields))
        return Walk(items)


def _same(speaker):
    return speaker


@dataclasses.dataclass(frozen=True)
class EmotionalCorpus:
    """An emotional corpus as :func:`prepare_emotional` needs it.

    Attributes
    ----------
    name : str
        Name in logs, errors and ``prepare_summary.json`` (``"CREMA-D"``).
    key : str
        ``corpus`` of the hashed options (``"cremad"``).
    walk : callable
        ``walk(data_folder, options, skips)`` -> :class:`Walk`; raises
        :class:`data_prep.common.PreparationError` naming a missing file or folder.
    eval_speakers : sequence, callable or None
        Evaluation speakers of the default split: a list, a function of the
        corpus-specific options (ESD: the last two speakers of each of the
        ``languages``), or ``None`` (the walk names them).
    n_valid_speakers : int
        Default number of validation speakers.
    speaker_id : callable
        A user-given speaker (e.g. RAVDESS ``3``) -> the manifest ``spk_id``.
    stratum_of : callable or None
        Speaker -> stratum of the validation round-robin (language, gender).
    known_unusable : mapping
        ``{ID: reason}`` of files the corpus's own documentation declares unusable
        (CREMA-D: no audio): never used, counted as ``known_unusable`` skips naming
        the file and the reason.
    prep_version : int
        Bumped when the outputs of the same options change.

    Example
    -------
    >>> demo = EmotionalCorpus("Demo", "demo", walk=lambda d, o, s: Walk([]), eval_speakers=("a",))
    >>> demo.default_eval_speakers({}), demo.speaker_id(3)
    (['a'], 3)
    """

    name: str
    key: str
    walk: Callable
    eval_speakers: object = None
    n_valid_speakers: int = 2
    speaker_id: Callable = _same
    stratum_of: Callable = None
    known_unusable: Mapping = dataclasses.field(default_factory=dict)
    prep_version: int = 1

    def default_eval_speakers(self, options):
        """The default split's evaluation speakers for the corpus-specific ``options`` (``None``: the walk's)."""
        if self.eval_speakers is None:
            return None
        chosen = self.eval_speakers(options) if callable(self.eval_speakers) else self.eval_speakers
        return sorted(chosen)


def drop_known_unusable(items, known, skips):
    """The items whose ID is not in ``known`` (``{ID: reason}``); the others are counted skips.

    Example
    -------
    >>> skips = SkipLog()
    >>> items = [{"ID": "a", "path": "/c/a.wav"}, {"ID": "b", "path": "/c/b.wav"}]
    >>> [i["ID"] for i in drop_known_unusable(items, {"b": "no audio (README)"}, skips)], skips.as_dict()
    (['a'], {'known_unusable': {'count': 1, 'first': ['/c/b.wav (no audio (README))']}})
    """
    keep = []
    for it in items:
        if it["ID"] in known:
            skips.add("known_unusable", f"{it['path']} ({known[it['ID']]})")
        else:
            keep.append(it)
    return keep


def filter_emotions(items, emotions, skips, corpus):
    """Keep the items whose emotion is in ``emotions`` (``None``: keep all).

    Items of other emotions are counted under ``filtered_emotion`` (not an
    error). An emotion name the corpus does not have raises.

    Example
    -------
    >>> items = [{"ID": "a", "emotion": "neutral"}, {"ID": "b", "emotion": "calm"}]
    >>> [i["ID"] for i in filter_emotions(items, ["neutral"], SkipLog(), "x")]
    ['a']
    """
    if emotions is None:
        return items
    known = {it["emotion"] for it in items}
    unknown = sorted(set(emotions) - known)
    if unknown:
        raise PreparationError(f"{corpus}: unknown emotion(s) {unknown}; the corpus has {sorted(known)}")
    keep = []
    for it in items:
        if it["emotion"] in emotions:
            keep.append(it)
        else:
            skips.add("filtered_emotion", it["ID"])
    return keep


def prepare_emotional(
    corpus, data_folder, save_folder, eval_speakers=None, n_valid_speakers=None, emotions=None, seed=1234,
    nontargets_per_target=3, num_workers=None, layout=None,
):
    """Prepare an emotional corpus for emotion-robust speaker verification (the steps of the module docstring).

    Arguments
    ---------
    corpus : EmotionalCorpus
        The corpus description.
    data_folder : str
        The corpus root (``$data_root`` of the manifests).
    save_folder : str
        Where manifests, trials, ``prepare_summary.json`` and ``prepare.json`` go.
    eval_speakers : sequence or None
        Evaluation speakers (``None``: the corpus's default split).
    n_valid_speakers : int or None
        Validation speakers held out of the others by ``seed`` (``None``: the corpus's default).
    emotions : sequence of str or None
        Emotions to keep (``None``: all).
    seed : int
        Seed of the speaker choices and of the trials.
    nontargets_per_target : int
        Non-target trials per target trial.
    num_workers : int or None
        Threads reading audio headers (does not change the outputs).
    layout : dict or None
        Corpus-specific options (ESD ``languages``, Dusha ``subsets``...): hashed
        with the others and given to the walk. ``n_eval_speakers`` among them
        chooses that many evaluation speakers by ``seed`` when ``eval_speakers`` is ``None``.

    Returns
    -------
    dict
        Summary: utterances/speakers per split, emotions, speakers, trial counts,
        skips, the walk's own counts, ``status``.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> data, save = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for spk in "abcde":
    ...     for emo in ("NEU", "SAD"):
    ...         soundfile.write(os.path.join(data, f"{spk}_{emo}.wav"), numpy.zeros(1600), 16000)
    >>> pattern = FileNamePattern(r"(?P<spk>[a-z])_(?P<emotion>[A-Z]+)\\.wav",
    ...                           {"emotion": {"NEU": "neutral", "SAD": "sad"}}, "{spk}", "emotion")
    >>> demo = EmotionalCorpus("Demo", "demo", NamedFiles(lambda root: [root], pattern), eval_speakers=("d", "e"))
    >>> summary = prepare_emotional(demo, data, save)
    >>> summary["speakers"]["eval"], len(summary["speakers"]["valid"]), summary["train"], summary["status"]
    (['d', 'e'], 2, {'utterances': 2, 'speakers': 1}, 'prepared')
    >>> open(os.path.join(save, "eval.csv")).readline().strip()
    'ID,duration,wav,spk_id,emotion,text'
    """
    layout = dict(layout or {})
    if eval_speakers is None:
        eval_speakers = corpus.default_eval_speakers(layout)
    else:
        eval_speakers = sorted(corpus.speaker_id(s) for s in eval_speakers)
    options = {
        "corpus": corpus.key,
        "prep_version": corpus.prep_version,
        **layout,
        "eval_speakers": eval_speakers,
        "n_valid_speakers": corpus.n_valid_speakers if n_valid_speakers is None else n_valid_speakers,
        "emotions": sorted(emotions) if emotions is not None else None,
        "seed": seed,
        "nontargets_per_target": nontargets_per_target,
    }
    data_folder, save_folder = os.path.abspath(data_folder), os.path.abspath(save_folder)
    build = functools.partial(_build, corpus, data_folder, save_folder, options, num_workers)
    return run_preparation(corpus.name, save_folder, options, build)


def _build(corpus, data_folder, save_folder, options, num_workers):
    """Steps 1-7 of the module docstring, under :func:`data_prep.corpus_utils.run_preparation`."""
    skips = SkipLog()
    walk = corpus.walk(data_folder, options, skips)
    items = drop_known_unusable(walk.items, corpus.known_unusable, skips)
    items = filter_emotions(items, options["emotions"], skips, corpus.name)
    chosen = _choose_eval_speakers(walk, items, options)
    rows = _manifest_rows(corpus.name, data_folder, items, skips, num_workers)
    splits = _split(corpus, data_folder, rows, chosen, options)
    outputs, trial_counts = _write_splits(corpus.name, save_folder, splits, options)
    skips.log(corpus.name)
    summary = {name: split_summary(r) for name, r in splits.items()}
    summary["emotions"] = sorted({r["emotion"] for r in rows})
    summary["speakers"] = {name: sorted({r["spk_id"] for r in r_}) for name, r_ in splits.items()}
    summary["trials"] = trial_counts
    summary["skipped"] = skips.as_dict()
    summary.update(walk.summary)
    return outputs, summary


def _choose_eval_speakers(walk, items, options):
    """Given speakers, else ``n_eval_speakers`` chosen by seed, else the default split."""
    if options["eval_speakers"] is not None:
        return options["eval_speakers"]
    speakers = sorted({it["spk_id"] for it in items})
    if options.get("n_eval_speakers") is not None:
        return pick_valid_speakers(speakers, options["n_eval_speakers"], f"{options['seed']}-eval")
    return sorted(set(walk.eval_speakers) & set(speakers))


def _manifest_rows(name, data_folder, items, skips, num_workers):
    """Manifest rows of the readable items, sorted by ID."""
    durations = read_durations([it["path"] for it in items], skips, num_workers, label=name)
    rows = [
        {
            "ID": it["ID"],
            "duration": durations[it["path"]],
            "wav": root_relative(it["path"], data_folder),
            "spk_id": it["spk_id"],
            "emotion": it["emotion"],
            "text": clean_text(it["text"]),
        }
        for it in items
        if it["path"] in durations
    ]
    if not rows:
        raise PreparationError(f"{name}: no readable audio under {data_folder} (skips: {skips.as_dict()})")
    rows.sort(key=lambda r: r["ID"])
    return rows


def _split(corpus, data_folder, rows, eval_speakers, options):
    """``{split: rows}``: the evaluation speakers, then validation speakers held out of the rest."""
    speakers = {r["spk_id"] for r in rows}
    eval_set = set(eval_speakers)
    absent = sorted(eval_set - speakers)
    if absent:
        raise PreparationError(
            f"{corpus.name}: eval speakers without readable audio under {data_folder}: {absent}"
        )
    valid_set = set(
        pick_valid_speakers(speakers - eval_set, options["n_valid_speakers"], options["seed"], corpus.stratum_of)
    )
    splits = {name: [] for name in SPLITS}
    for row in rows:
        spk = row["spk_id"]
        splits["eval" if spk in eval_set else "valid" if spk in valid_set else "train"].append(row)
    return splits


def _write_splits(name, save_folder, splits, options):
    """Write the three manifests and the valid/eval trial conditions; return (outputs, trial counts)."""
    outputs = []
    for split, split_rows in splits.items():
        path = os.path.join(save_folder, f"{split}.csv")
        write_manifest(path, split_rows, extra_columns=EMOTION_COLUMNS)
        outputs.append(path)
    trial_counts = {}
    for split in ("valid", "eval"):
        if split == "valid" and not splits[split]:  # n_valid_speakers=0: an empty list
            outputs += write_conditions(save_folder, split, {"all": []})
            trial_counts["valid/all"] = 0
            continue
        conditions = emotion_trials(
            splits[split], seed=options["seed"], nontargets_per_target=options["nontargets_per_target"]
        )
        if not conditions.get("all"):
            raise PreparationError(f"{name}: no {split} trials could be made from {split_summary(splits[split])}")
        outputs += write_conditions(save_folder, split, conditions)
        trial_counts.update({f"{split}/{c}": len(t) for c, t in conditions.items()})
    return outputs, trial_counts

