"""VoxCeleb1 (+ optional VoxCeleb2 dev) for speaker verification.

Layout (verified against SpeechBrain's ``recipes/VoxCeleb/voxceleb_prepare.py``
conventions and the VoxCeleb READMEs of PaddleSpeech ``examples/voxceleb`` and
mindaudio ``recipes/VoxCeleb``: ``wav/<spk>/<video>/<n>.wav``, VoxCeleb2 released as
``.m4a`` that must be converted to 16 kHz wav, and the cleaned trial lists
``veri_test2.txt`` (37,611 trials), ``list_test_all2.txt``, ``list_test_hard2.txt``)::

    <data_folder>/wav/<spk>/<video>/<nnnnn>.wav          vox1_dev_wav.zip + vox1_test_wav.zip
      or vox1_dev_wav/wav/... and vox1_test_wav/wav/...   (two separate extractions)
      or dev/wav/... and test/wav/...                     (``unzip vox1_dev_wav.zip -d dev``,
                                                          ``-d test``: WeSpeaker's voxceleb1/)
    <data_folder>/veri_test2.txt                          Vox1-O (cleaned)
    <data_folder>/list_test_all2.txt                      Vox1-E (cleaned)
    <data_folder>/list_test_hard2.txt                     Vox1-H (cleaned)
        trial lists may also sit in <data_folder>/meta/ or <data_folder>/lists/,
        or in the folder given by ``lists_folder``
    <data_folder>/vox2_dev/<spk>/<video>/<nnnnn>.wav      optional, converted from .m4a
        (.flac too). vox2_dev_aac.zip unzips to dev/aac/<spk>/<video>/<n>.m4a: the
        levels vox2_dev/dev/aac, vox2_dev/aac, vox2_dev/dev/wav, vox2_dev/wav,
        vox2_dev/dev, and dev/aac, dev/wav, dev under data_folder are accepted (the
        first holding converted audio wins, else the first holding speaker folders)
    <data_folder>/wav/id0xxxx/...                         or VoxCeleb2 merged into VoxCeleb1's
        wav/ (SpeechBrain's documented layout): VoxCeleb1 speakers are id10001-id11251,
        VoxCeleb2 speakers id00012-id09272, so a speaker folder says which corpus it
        belongs to wherever it lies

A trial line is ``<1|0> <spk>/<video>/<n>.wav <spk>/<video>/<n>.wav``.

VoxCeleb2 is released as AAC in MP4 (``.m4a``), which libsndfile cannot read.
Convert it once with ``python -m data_prep.convert <vox2 folder>`` (PyAV, no system
FFmpeg; :mod:`data_prep.convert`): it writes ``<n>.wav`` (or ``--format flac``)
next to each ``<n>.m4a``. A VoxCeleb2 folder holding only ``.m4a`` stops the
preparation with that command; ``.m4a`` files without a converted twin in a
partly converted tree are counted (``m4a_not_converted``). macOS ``._*`` files
are ignored.

Manifest IDs are paths without extension (``id10270/5r0dWxy17C8/00001``; VoxCeleb1
speakers are id10001-id11251 and VoxCeleb2 speakers id00012-id09272, so IDs
never collide); ``spk_id`` is the first component.

Training excludes the 40 Vox1-O test speakers (id10270-id10309) always, and every
speaker named by a requested trial list. Vox1-E and Vox1-H draw on the whole of
VoxCeleb1 (dev speakers included), so requesting either leaves no VoxCeleb1
speaker for training: the conventional setup then trains on VoxCeleb2 dev only
(``use_vox2=True``), which this preparation requires and logs. ``use_vox2=False``
leaves VoxCeleb2 out wherever it lies (speakers id0xxxx merged into ``wav/`` are
then counted as ``vox2_not_used`` and logged). Trials naming an
utterance that does not exist are an error (first ids named); an utterance that
exists but cannot be read is a counted skip and its trials are dropped (counted
per list in the summary).

Outputs: ``train.csv``, ``valid.csv`` (``n_valid_speakers`` training speakers held
out by ``seed``) with ``trials/valid/all.txt`` (:func:`data_prep.common.speaker_trials`),
``eval.csv`` (every utterance a requested list names) and ``trials/eval/<list>.txt``
for ``vox1_o``, ``vox1_e``, ``vox1_h``.

``duration_from="none"`` skips the header reads (duration 0.0): only for
benchmarking the walk and manifest path (``bench/bench_prep_scale.py``).
"""

import functools
import logging
import os
import re
import time
from collections import Counter

from data_prep.common import PreparationError
from data_prep.corpus_utils import (
    SkipLog,
    audio_row,
    is_hidden_file,
    read_durations,
    run_preparation,
    validation_options,
    write_verification_outputs,
)

logger = logging.getLogger(__name__)

CORPUS = "VoxCeleb"
VOX1_VERSION = "VoxCeleb1 (vox1_dev_wav.zip + vox1_test_wav.zip, wav/<spk>/<video>/<n>.wav)"
VOX2_VERSION = "VoxCeleb2 dev (vox2_dev_aac.zip converted to 16 kHz wav or flac)"
VOX1_TEST_SPEAKERS = tuple(f"id{n}" for n in range(10270, 10310))
TRIAL_LISTS = {"vox1_o": "veri_test2.txt", "vox1_e": "list_test_all2.txt", "vox1_h": "list_test_hard2.txt"}
DEFAULT_VOX1_ROOTS = ("wav", "vox1_dev_wav/wav", "vox1_test_wav/wav", "dev/wav", "test/wav")
LIST_SUBFOLDERS = ("", "meta", "lists")
VOX2_LEVELS = ("", "dev/aac", "aac", "dev/wav", "wav", "dev")  # below vox2_root
VOX2_TOP_LEVELS = ("dev/aac", "dev/wav", "dev")  # vox2_dev_aac.zip unzipped into data_folder itself
VOX2_SPEAKER = re.compile(r"id0\d{4}")  # VoxCeleb1 speakers are id1xxxx
AUDIO_EXTS = (".wav", ".flac")
M4A_HINT = (
    "convert them first (16 kHz mono wav next to each .m4a, resumable, in parallel):\n"
    "  python -m data_prep.convert {root}\n"
    "(`pip install av`, or the `convert` extra of this package; `--format flac` halves the disk)"
)


def utterance_id(token):
    """Manifest ID of a trial-list path: the path without its extension.

    Example
    -------
    >>> utterance_id("id10270/x6uYqmx31kE/00001.wav")
    'id10270/x6uYqmx31kE/00001'
    """
    stem, ext = os.path.splitext(token)
    return stem if ext.lower() in (".wav", ".m4a", ".flac") else token


def read_trial_list(path):
    """Parse a VoxCeleb trial list into ``(label, enrol_id, test_id)`` tuples.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "veri_test2.txt")
    >>> with open(p, "w") as f:
    ...     _ = f.write("1 id10270/a/00001.wav id10270/b/00002.wav\\n")
    ...     _ = f.write("0 id10270/a/00001.wav id10300/c/00001.wav\\n")
    >>> read_trial_list(p)
    [(1, 'id10270/a/00001', 'id10270/b/00002'), (0, 'id10270/a/00001', 'id10300/c/00001')]
    """
    trials = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise PreparationError(
                    f"{path}:{number}: expected '<1|0> <spk>/<video>/<n>.wav <spk>/<video>/<n>.wav', "
                    f"got {line!r}"
                )
            trials.append((int(parts[0]), utterance_id(parts[1]), utterance_id(parts[2])))
    return trials


def walk_speaker_tree(root, ext_counts=None, unconverted=None):
    """``(utt_id, path)`` of every ``<root>/<spk>/<video>/<n>.wav`` (or ``.flac``; wav first), sorted.

    ``ext_counts`` (a Counter) receives the number of files per extension (macOS
    ``._*`` files are not counted); ``unconverted`` (a list) the paths of the
    ``.m4a`` files that have no ``.wav``/``.flac`` twin.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "id1", "v1"))
    >>> for n in ("00002.wav", "00001.FLAC", "00002.m4a", "00003.m4a", "._00001.wav"):
    ...     open(os.path.join(d, "id1", "v1", n), "w").close()
    >>> counts, unconverted = Counter(), []
    >>> [u for u, _ in walk_speaker_tree(d, counts, unconverted)], counts[".m4a"], counts[".wav"]
    (['id1/v1/00001', 'id1/v1/00002'], 2, 1)
    >>> [os.path.basename(p) for p in unconverted]
    ['00003.m4a']
    """
    out = []
    ext_counts = Counter() if ext_counts is None else ext_counts
    for spk, spk_path in _subdirs(root):
        for video, video_path in _subdirs(spk_path):
            with os.scandir(video_path) as it:
                names = sorted(e.name for e in it if e.is_file() and not is_hidden_file(e.name))
            audio, m4a = {}, []
            for name in names:
                stem, ext = os.path.splitext(name)
                ext = ext.lower()
                ext_counts[ext] += 1
                if ext in AUDIO_EXTS and (stem not in audio or ext == ".wav"):
                    audio[stem] = name
                elif ext == ".m4a":
                    m4a.append(stem)
            out += [(f"{spk}/{video}/{stem}", f"{video_path}/{name}") for stem, name in sorted(audio.items())]
            if unconverted is not None:
                unconverted += [f"{video_path}/{stem}.m4a" for stem in m4a if stem not in audio]
    return out


def _subdirs(path):
    with os.scandir(path) as it:
        return sorted((e.name, e.path) for e in it if e.is_dir())


def _find_list(name, data_folder, lists_folder):
    filename = TRIAL_LISTS[name]
    folders = [lists_folder] if lists_folder else [os.path.join(data_folder, s) for s in LIST_SUBFOLDERS]
    candidates = [os.path.normpath(os.path.join(folder, filename)) for folder in folders]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise PreparationError(
        f"{VOX1_VERSION}: trial list {name!r} needs {candidates[0]}"
        + (f" (also looked for {', '.join(candidates[1:])})" if len(candidates) > 1 else "")
    )


def _vox1_roots(data_folder, vox1_roots):
    if vox1_roots is None:
        roots = [os.path.join(data_folder, r) for r in DEFAULT_VOX1_ROOTS]
        found = [r for r in roots if os.path.isdir(r)]
        if not found:
            raise PreparationError(
                f"{VOX1_VERSION}: no VoxCeleb1 audio folder; expected {' or '.join(roots)}"
            )
        return found
    roots = [os.path.join(data_folder, r) for r in vox1_roots]
    for root in roots:
        if not os.path.isdir(root):
            raise PreparationError(f"{VOX1_VERSION}: missing folder {root}")
    return roots


def _has_vox2_speakers(path):
    # A VoxCeleb1 dev/wav (WeSpeaker's layout) is no VoxCeleb2 candidate: its speakers are id1xxxx.
    return os.path.isdir(path) and any(VOX2_SPEAKER.fullmatch(n) for n, _ in _subdirs(path))


def _has_audio(path):
    """True when the first video folder of the first speaker of ``path`` holds converted audio."""
    for _spk, spk_path in _subdirs(path)[:1]:
        for _video, video_path in _subdirs(spk_path)[:1]:
            return any(os.path.splitext(n)[1].lower() in AUDIO_EXTS for n in os.listdir(video_path))
    return False


def _vox2_root(data_folder, vox2_root):
    """The VoxCeleb2 folder of speaker folders (see the module docstring), or ``None`` when there is none."""
    candidates = [os.path.normpath(os.path.join(data_folder, vox2_root, level)) for level in VOX2_LEVELS]
    candidates += [os.path.join(data_folder, level) for level in VOX2_TOP_LEVELS]
    with_speakers = [c for c in dict.fromkeys(candidates) if _has_vox2_speakers(c)]
    if not with_speakers:
        return None
    chosen = next((c for c in with_speakers if _has_audio(c)), with_speakers[0])
    if chosen != candidates[0]:
        logger.info("%s: VoxCeleb2 dev read from %s", CORPUS, chosen)
    return chosen


def _walk_vox2(root, skips):
    counts, unconverted = Counter(), []
    utts = walk_speaker_tree(root, counts, unconverted)
    if not utts:
        if counts[".m4a"]:
            raise PreparationError(
                f"{VOX2_VERSION}: {root} holds {counts['.m4a']} .m4a files and no .wav; "
                + M4A_HINT.format(root=root)
            )
        raise PreparationError(f"{VOX2_VERSION}: no <spk>/<video>/<n>.wav under {root}")
    for path in unconverted:
        skips.add("m4a_not_converted", path)
    if unconverted:
        logger.warning("%s: %d .m4a file(s) under %s have no converted twin; %s", CORPUS, len(unconverted), root,
                       M4A_HINT.format(root=root))
    return utts


def _walk(data_folder, roots, options, skips):
    """``{utt_id: path}`` of VoxCeleb1 (the first root wins a duplicate id) and ``[(utt_id, path)]`` of
    VoxCeleb2 (from its own folder and from VoxCeleb2 speakers merged into the VoxCeleb1 roots).
    """
    vox1, merged = {}, []
    for root in roots:
        unconverted = []
        for utt, path in walk_speaker_tree(root, unconverted=unconverted):
            if VOX2_SPEAKER.fullmatch(utt.split("/")[0]):
                merged.append((utt, path))
            elif utt in vox1:
                skips.add("duplicate_id", path)
            else:
                vox1[utt] = path
        for path in unconverted:
            skips.add("m4a_not_converted", path)
    vox2 = []
    if options["use_vox2"]:
        vox2 = _vox2_utterances(data_folder, options["vox2_root"], roots, merged, skips)
    elif merged:
        for _utt, path in merged:
            skips.add("vox2_not_used", path)
        logger.warning("%s: %d VoxCeleb2 utterance(s) found in %s are not used (use_vox2=False)", CORPUS,
                       len(merged), ", ".join(roots))
    logger.info("%s: found %d VoxCeleb1 and %d VoxCeleb2 utterances", CORPUS, len(vox1), len(vox2))
    return vox1, vox2


def _vox2_utterances(data_folder, vox2_root, vox1_roots, merged, skips):
    """VoxCeleb2's ``[(utt_id, path)]``: its own folder (unless it is a VoxCeleb1 root) and the merged ones."""
    root = _vox2_root(data_folder, vox2_root)
    if root is not None and os.path.normpath(root) in map(os.path.normpath, vox1_roots):
        root = None  # vox2_root="wav": the merged layout, already walked
    if root is None and not merged:
        folder = os.path.join(data_folder, vox2_root)
        raise PreparationError(
            f"{VOX2_VERSION}: no VoxCeleb2 speaker folder (id0xxxx) under {folder} (nor its dev/aac, aac, "
            f"dev/wav, wav levels, nor {os.path.join(data_folder, 'dev', 'aac')}) and none merged into "
            f"{', '.join(vox1_roots)}; set vox2_root, or use_vox2=False"
        )
    if root is None:
        logger.info("%s: VoxCeleb2 merged into %s (%d utterances)", CORPUS, ", ".join(vox1_roots), len(merged))
        return merged
    seen = {u for u, _ in merged}
    vox2 = list(merged)
    for utt, path in _walk_vox2(root, skips):
        if utt in seen:
            skips.add("duplicate_id", path)
        else:
            vox2.append((utt, path))
    return vox2


def _read_lists(list_paths, vox1, roots):
    """``{list: trials}``; a trial naming an utterance absent from VoxCeleb1 is an error naming the first ones."""
    lists = {}
    for name, path in list_paths.items():
        trials = read_trial_list(path)
        unknown_ids = sorted({u for _, e, t in trials for u in (e, t) if u not in vox1})
        if unknown_ids:
            raise PreparationError(
                f"{path}: {len(unknown_ids)} utterance(s) not found under {', '.join(roots)}; "
                f"first: {', '.join(unknown_ids[:5])}"
            )
        lists[name] = trials
    return lists


def _training_utterances(vox1, vox2, lists, use_vox2, data_folder, vox2_root):
    """``[(utt_id, path)]`` of the speakers no trial list names (nor Vox1-O), and the excluded speakers."""
    trial_speakers = {u.split("/")[0] for trials in lists.values() for _, e, t in trials for u in (e, t)}
    excluded = set(VOX1_TEST_SPEAKERS) | trial_speakers
    if {"vox1_e", "vox1_h"} & set(lists):
        logger.warning(
            "%s: Vox1-E/H name VoxCeleb1 dev speakers; their %d trial speakers excluded from training "
            "(with the official lists: every VoxCeleb1 speaker, so training is VoxCeleb2 dev only)",
            CORPUS,
            len(trial_speakers),
        )
        if not use_vox2:
            raise PreparationError(
                f"{CORPUS}: trial lists {sorted({'vox1_e', 'vox1_h'} & set(lists))} leave no VoxCeleb1 "
                f"training speaker; set use_vox2=True with {VOX2_VERSION} under "
                f"{os.path.join(data_folder, vox2_root)}"
            )
    train_utts = [(u, p) for u, p in vox1.items() if u.split("/")[0] not in excluded]
    n_vox2_excluded = 0
    for u, p in vox2:
        if u.split("/")[0] in excluded:
            n_vox2_excluded += 1
        else:
            train_utts.append((u, p))
    if n_vox2_excluded:
        logger.warning("%s: %d VoxCeleb2 utterances of trial speakers excluded", CORPUS, n_vox2_excluded)
    if not train_utts:
        raise PreparationError(f"{CORPUS}: no training utterance left under {data_folder}")
    return train_utts, excluded


def _readable_trials(lists, eval_rows):
    """The trial lists without the trials naming unreadable audio, and ``{list: number dropped}``."""
    readable = {r["ID"] for r in eval_rows}
    kept_lists, dropped = {}, {}
    for name, trials in lists.items():
        kept_lists[name] = [t for t in trials if t[1] in readable and t[2] in readable]
        if len(kept_lists[name]) < len(trials):
            dropped[name] = len(trials) - len(kept_lists[name])
            logger.warning("%s: %s loses %d trial(s) naming unreadable audio", CORPUS, name, dropped[name])
    return kept_lists, dropped


def _build(data_folder, save_folder, options, num_workers, vox2_root):
    """Walk the corpus, read the lists and durations, write the outputs; ``(outputs, summary)``."""
    timings = {}
    tic = time.monotonic()
    skips = SkipLog()
    roots = _vox1_roots(data_folder, options["vox1_roots"])
    list_paths = {name: _find_list(name, data_folder, options["lists_folder"]) for name in options["trial_lists"]}
    vox1, vox2 = _walk(data_folder, roots, options, skips)
    timings["walk_s"] = round(time.monotonic() - tic, 3)

    tic = time.monotonic()
    lists = _read_lists(list_paths, vox1, roots)
    train_utts, excluded = _training_utterances(vox1, vox2, lists, options["use_vox2"], data_folder, vox2_root)
    eval_ids = sorted({u for trials in lists.values() for _, e, t in trials for u in (e, t)})
    timings["lists_s"] = round(time.monotonic() - tic, 3)

    tic = time.monotonic()
    paths = [p for _, p in train_utts] + [vox1[u] for u in eval_ids]
    durations = read_durations(paths, skips, num_workers, options["duration_from"], label=CORPUS)
    timings["durations_s"] = round(time.monotonic() - tic, 3)

    tic = time.monotonic()
    train_rows = sorted(
        (audio_row(u, p, durations[p], data_folder, u.split("/")[0]) for u, p in train_utts if p in durations),
        key=lambda r: r["ID"],
    )
    eval_rows = [
        audio_row(u, vox1[u], durations[vox1[u]], data_folder, u.split("/")[0])
        for u in eval_ids
        if vox1[u] in durations
    ]
    lists, dropped = _readable_trials(lists, eval_rows)
    outputs, summary = write_verification_outputs(save_folder, train_rows, eval_rows, lists, options)
    if summary["valid"]["utterances"] and not summary["trials"]["valid/all"]:
        raise PreparationError(f"{CORPUS}: no validation trials from {summary['valid']}")
    timings["write_s"] = round(time.monotonic() - tic, 3)
    skips.log(CORPUS)
    summary.update(
        trials_dropped=dropped, excluded_speakers=len(excluded), vox1_roots=roots, skipped=skips.as_dict(),
        timings=timings,
    )
    return outputs, summary


def prepare_voxceleb(data_folder, save_folder, trial_lists=("vox1_o",), vox1_roots=None, lists_folder=None,
                     use_vox2=False, vox2_root="vox2_dev", n_valid_speakers=20, valid_max_targets_per_speaker=10,
                     seed=1234, nontargets_per_target=3, duration_from="soundfile", num_workers=None):
    """Prepare VoxCeleb1 (+ VoxCeleb2 dev) for speaker verification (see the module docstring).

    Arguments
    ---------
    data_folder : str
        The VoxCeleb root.
    save_folder : str
        Where manifests, trials and ``prepare.json`` go.
    trial_lists : sequence of str
        Any of ``vox1_o``, ``vox1_e``, ``vox1_h``.
    vox1_roots : sequence of str or None
        VoxCeleb1 audio roots relative to ``data_folder`` (``None``: those of
        ``wav``, ``vox1_dev_wav/wav``, ``vox1_test_wav/wav`` that exist).
    lists_folder : str or None
        Folder of the trial lists (``None``: ``data_folder``, ``meta/``, ``lists/``).
    use_vox2 : bool
        Add VoxCeleb2 dev to training (required with ``vox1_e``/``vox1_h``).
    vox2_root : str
        VoxCeleb2 dev folder relative to ``data_folder``.
    n_valid_speakers : int
        Validation speakers held out of the training speakers (by ``seed``).
    valid_max_targets_per_speaker : int or None
        Cap on test utterances per validation speaker in ``trials/valid/all.txt``.
    seed : int
        Seed of the validation choice and of the validation trials.
    nontargets_per_target : int
        Non-target validation trials per target trial.
    duration_from : str
        ``soundfile`` (header reads) or ``none`` (0.0; benchmarks only).
    num_workers : int or None
        Threads reading audio headers (does not change the outputs).

    Returns
    -------
    dict
        Summary: utterances/speakers per split, trials per list, skips, timings, ``status``.

    Example
    -------
    >>> import tempfile
    >>> prepare_voxceleb(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: VoxCeleb1 (...): no VoxCeleb1 audio folder; expected .../wav or ...
    """
    trial_lists = list(trial_lists)
    unknown = sorted(set(trial_lists) - set(TRIAL_LISTS))
    if unknown:
        raise ValueError(f"unknown trial lists {unknown}; choose among {sorted(TRIAL_LISTS)}")
    if not trial_lists:
        raise ValueError("trial_lists must name at least one of vox1_o, vox1_e, vox1_h")
    options = {
        "corpus": "voxceleb",
        "prep_version": 2,
        "trial_lists": sorted(trial_lists),
        "vox1_roots": list(vox1_roots) if vox1_roots is not None else None,
        "lists_folder": lists_folder,
        "use_vox2": bool(use_vox2),
        "vox2_root": vox2_root if use_vox2 else None,
        **validation_options(n_valid_speakers, valid_max_targets_per_speaker, seed, nontargets_per_target),
        "duration_from": duration_from,
    }
    data_folder, save_folder = os.path.abspath(data_folder), os.path.abspath(save_folder)
    build = functools.partial(_build, data_folder, save_folder, options, num_workers, vox2_root)
    return run_preparation(CORPUS, save_folder, options, build)
