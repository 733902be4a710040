"""CN-Celeb1 + CN-Celeb2 (Fan et al. 2020; Li et al. 2022; OpenSLR 82) for speaker verification.

Layout (verified against WeSpeaker ``examples/cnceleb/v2/local/prepare_data.sh``,
``comb_cn1_cn2.sh``, ``combine_utt.sh`` and ``format_trials_cnceleb.py``, ESPnet
``egs2/cnceleb/spk1/local/data.sh`` and Kaldi ``egs/cnceleb/v1/local/make_cnceleb1.sh``)::

    <data_folder>/CN-Celeb_flac/                 cn-celeb_v2.tar.gz
        data/<spk>/<genre>-<session>-<n>.flac      id00000-id00999 (all speakers)
        dev/dev.lst                                training speakers id00000-id00799
        eval/enroll/<spk>-enroll.flac              one (concatenated) enrolment file per model
        eval/test/<spk>-<genre>-<session>-<n>.flac
        eval/lists/enroll.lst                      "<model> enroll/<spk>-enroll.wav"
        eval/lists/enroll.map                      "<model> <spk>/<utt>.wav <spk>/<utt>.wav ..."
        eval/lists/test.lst                        (not needed)
        eval/lists/trials.lst                      "<model> test/<spk>-<utt>.wav <1|0>"
    <data_folder>/CN-Celeb2_flac/                cn-celeb2_v2.tar.gz
        data/<spk>/<genre>-<session>-<n>.flac
        spk.lst                                    CN-Celeb2 speakers

Model ids look like ``id00800-enroll``. The lists of the flac release still name
``.wav`` files (WeSpeaker uses their entries as keys of its converted wav
folders); a list entry is therefore resolved by its stem to the ``.flac`` (or
``.wav``) actually present. Test entries are accepted as ``test/<stem>``,
``eval/test/<stem>``, ``<stem>`` or ``<spk>/<utt>`` (tried as
``eval/test/<spk>-<utt>`` then ``data/<spk>/<utt>``); labels as ``1``/``0`` or
``target``/``nontarget``.

Training = CN-Celeb1 ``dev.lst`` speakers + CN-Celeb2 ``spk.lst`` speakers (minus
any evaluation speaker; 2,793 speakers in the full corpus according to the
recipe brief, not recounted here). Genre = file-name prefix
(``singing-01-001`` -> ``singing``). With ``min_duration`` > 0, consecutive
(name-sorted) segments of one speaker and genre are combined until each group
reaches ``min_duration`` seconds (WeSpeaker combines within speaker+genre up to
5 s; our grouping is greedy: a group closes once it reaches the minimum and a
short remainder joins the previous group; a speaker-genre whose total is below
the minimum stays one group). ``combine_mode``:

- ``"write"`` (default): each multi-segment group is written as one FLAC
  (16-bit) to ``<save_folder>/combined/train/<spk>/<first>-comb<k>.flac``
  (temporary file + atomic rename; an existing file of the right length is
  reused), manifest ``ID`` ``<spk>/<first>-comb<k>`` and an absolute ``wav``
  path (the files live in ``save_folder``, not under ``$data_root``). The data
  pipeline needs nothing special. Disk: the combined share of the corpus again
  (FLAC).
- ``"list"``: nothing is written; every row of ``train.csv``/``valid.csv`` gets
  an extra ``wav_list`` column of ``;``-joined ``$data_root`` paths (``wav`` = the
  first one). :func:`speechbrain_ext.data.add_audio` reads a manifest with that
  column as the concatenation of the listed segments (the row's ``duration``): a
  training crop is drawn over the whole group and read from the segments it spans
  (:class:`speechbrain_ext.data.AudioReader`). No extra disk; a crop that spans a
  boundary opens two files.

Manifest IDs: ``<spk>/<utt>`` for ``data/`` files (``id00000/singing-01-001``),
``test/<stem>`` for ``eval/test`` files (``test/id00800-singing-01-001``),
``enroll/<model>`` for concatenated enrolments.

Evaluation protocols (``protocols``), as WeSpeaker's ``examples/cnceleb/v2``
prepares them (``local/prepare_data.sh``, ``local/format_trials_cnceleb.py``):

- ``avg`` (CNC-Eval-Avg): the enrolment of a model is the mean of the embeddings
  of its ``enroll.map`` utterances (``data/<spk>/<utt>``); ``trials.lst`` as is.
- ``concat`` (CNC-Eval-Concat): the enrolment of a model is the embedding of one
  file. ``concat_enrol="corpus"`` (default, as WeSpeaker) is the corpus's own
  ``eval/enroll/<model>.flac`` named by ``enroll.lst``; ``concat_enrol="write"``
  concatenates the model's ``enroll.map`` utterances, in list order, into
  ``<save_folder>/combined/enroll/<model>.flac`` instead.

Each protocol is one evaluation split (a manifest and a trial folder)::

    eval_avg.csv       trials/eval_avg/cnc_eval_avg.txt        "<label> <model> <test_id>"
                       trials/eval_avg/enrol.map               "<model> <utt_id> <utt_id> ..."
    eval_concat.csv    trials/eval_concat/cnc_eval_concat.txt  "<label> enroll/<model> <test_id>"

and, for the evaluation stage before the ``eval_splits`` contract, ``eval.csv``
(the union) with ``trials/eval/`` holding both lists and ``enrol.map``.

``valid.csv`` holds ``n_valid_speakers`` training speakers (by ``seed``) with
``trials/valid/all.txt`` from :func:`data_prep.common.speaker_trials`.
"""

import functools
import logging
import os
import shutil

import numpy as np
import soundfile as sf

from data_prep.common import PreparationError, write_enrol_map, write_manifest
from data_prep.corpus_utils import (
    SkipLog,
    audio_row,
    check_subset,
    has_frames,
    is_hidden_file,
    read_durations,
    root_relative,
    run_parallel,
    run_preparation,
    validation_options,
    write_conditions,
    write_flac16,
    write_verification_outputs,
)

logger = logging.getLogger(__name__)

CORPUS = "CN-Celeb"
CN1_FOLDER = "CN-Celeb_flac"
CN2_FOLDER = "CN-Celeb2_flac"
CN1_VERSION = "CN-Celeb1 v2 (cn-celeb_v2.tar.gz, OpenSLR 82)"
CN2_VERSION = "CN-Celeb2 v2 (cn-celeb2_v2.tar.gz, OpenSLR 82)"
AUDIO_EXTS = (".flac", ".wav")
LABELS = {"1": 1, "0": 0, "target": 1, "nontarget": 0}
PROTOCOL_SPLITS = {"avg": ("eval_avg", "cnc_eval_avg"), "concat": ("eval_concat", "cnc_eval_concat")}


def genre_of(utt):
    """Genre of a CN-Celeb utterance name: the prefix before the first ``-``.

    Example
    -------
    >>> genre_of("singing-01-001"), genre_of("id00800-singing-01-001.flac")
    ('singing', 'id00800')
    """
    return os.path.basename(utt).split("-")[0]


def speaker_of(uid):
    """Speaker of a manifest ID of this preparation.

    Example
    -------
    >>> [speaker_of(u) for u in ("test/id00800-vlog-01-001", "enroll/id00801-enroll", "id00002/vlog-01-001")]
    ['id00800', 'id00801', 'id00002']
    """
    if uid.startswith(("test/", "enroll/")):
        return uid.split("/", 1)[1].split("-")[0]
    return uid.split("/")[0]


def group_short_segments(durations, min_duration):
    """Group consecutive segments so that each group lasts at least ``min_duration``.

    Greedy: a group closes once its total reaches ``min_duration``; a remainder
    below it joins the previous group (or stays alone when it is the only group).

    Returns
    -------
    list of (start, end)
        Half-open index ranges covering ``range(len(durations))`` in order.

    Example
    -------
    >>> group_short_segments([1.0, 1.0, 6.0, 2.0, 2.0, 1.0], 3.0)
    [(0, 3), (3, 6)]
    >>> group_short_segments([6.0, 7.0, 1.0], 5.0)
    [(0, 1), (1, 3)]
    >>> group_short_segments([1.0, 1.0], 5.0), group_short_segments([1.0, 2.0], 0)
    ([(0, 2)], [(0, 1), (1, 2)])
    """
    groups = []
    start, total = 0, 0.0
    for i, duration in enumerate(durations):
        total += duration
        if total >= min_duration - 1e-9:
            groups.append((start, i + 1))
            start, total = i + 1, 0.0
    if start < len(durations):
        if groups:
            groups[-1] = (groups[-1][0], len(durations))
        else:
            groups.append((start, len(durations)))
    return groups


def read_list(path, version):
    """Lines of a corpus list, split on whitespace (empty lines dropped).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "dev.lst")
    >>> _ = open(p, "w").write("id00000\\n\\nid00001\\n")
    >>> read_list(p, "CN-Celeb1")
    [['id00000'], ['id00001']]
    """
    if not os.path.isfile(path):
        raise PreparationError(f"{version}: missing list {path}")
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def strip_audio_ext(token):
    """A list entry without its audio extension, with ``/`` separators.

    Example
    -------
    >>> strip_audio_ext("test/id00800-singing-01-001.wav"), strip_audio_ext("id00800/a-01-001.flac")
    ('test/id00800-singing-01-001', 'id00800/a-01-001')
    """
    token = token.replace("\\", "/")
    stem, ext = os.path.splitext(token)
    return stem if ext.lower() in AUDIO_EXTS else token


def _audio_index(folder):
    """{stem: path} of the audio files directly in ``folder`` (.flac preferred)."""
    index = {}
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return index
    for name in names:
        stem, ext = os.path.splitext(name)
        ext = ext.lower()
        if is_hidden_file(name):
            continue
        if ext in AUDIO_EXTS and (stem not in index or ext == ".flac"):
            index[stem] = os.path.join(folder, name)
    return index


class _DataIndex:
    """Lazy per-speaker index of ``<data>/<spk>/`` files."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.cache = {}

    def get(self, spk, utt):
        if spk not in self.cache:
            self.cache[spk] = _audio_index(os.path.join(self.data_dir, spk))
        return self.cache[spk].get(utt)


def _data_key(token):
    stem = strip_audio_ext(token)
    if stem.startswith("data/"):
        stem = stem[len("data/") :]
    parts = stem.split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 2 else (None, stem)


def _resolve_test(token, test_index, data_index):
    """(ID, path) of a trials.lst test entry, or None."""
    stem = strip_audio_ext(token)
    for prefix in ("eval/test/", "test/"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
            break
    if "/" not in stem:
        path = test_index.get(stem)
        return (f"test/{stem}", path) if path else None
    spk, utt = stem.rsplit("/", 1)
    spk = spk.split("/")[-1]
    path = test_index.get(f"{spk}-{utt}")
    if path:
        return f"test/{spk}-{utt}", path
    path = data_index.get(spk, utt)
    return (f"{spk}/{utt}", path) if path else None


def _write_concat(job):
    """Concatenate ``job = (out_path, in_paths)`` into a FLAC (reusing a complete one); return its duration."""
    out_path, in_paths = job
    infos = [sf.info(p) for p in in_paths]
    frames = sum(i.frames for i in infos)
    rates = {i.samplerate for i in infos}
    channels = {i.channels for i in infos}
    if len(rates) != 1 or len(channels) != 1:
        raise PreparationError(f"cannot concatenate audio of different formats: {in_paths}")
    if not has_frames(out_path, frames):
        data = np.concatenate([sf.read(p, dtype="int16", always_2d=True)[0] for p in in_paths])
        write_flac16(out_path, data, infos[0].samplerate)
    return frames / infos[0].samplerate


def _write_all(jobs, num_workers):
    """``{out_path: duration}`` of the concatenations ``{out_path: in_paths}``, written on a thread pool."""
    return dict(zip(jobs, run_parallel(_write_concat, jobs.items(), num_workers, label=f"{CORPUS} combined files")))


def _prune(folder, keep):
    """Remove files under ``folder`` (ours) that are not in ``keep``; drop empty dirs."""
    if not os.path.isdir(folder):
        return
    for dirpath, _dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path not in keep:
                os.remove(path)
        if dirpath != folder and not os.listdir(dirpath):
            os.rmdir(dirpath)


def _collect_training(data_folder, use_cnceleb2, eval_speakers, skips):
    cn1 = os.path.join(data_folder, CN1_FOLDER)
    sources = [(os.path.join(cn1, "data"), os.path.join(cn1, "dev", "dev.lst"), CN1_VERSION)]
    if use_cnceleb2:
        cn2 = os.path.join(data_folder, CN2_FOLDER)
        sources.append((os.path.join(cn2, "data"), os.path.join(cn2, "spk.lst"), CN2_VERSION))
    files = []  # (spk, utt, path)
    seen = set()
    for data_dir, list_path, version in sources:
        if not os.path.isdir(data_dir):
            raise PreparationError(f"{version}: missing folder {data_dir}")
        for fields in read_list(list_path, version):
            spk = fields[0]
            if spk in seen:
                continue
            seen.add(spk)
            if spk in eval_speakers:
                skips.add("eval_speaker_in_training_list", spk)
                continue
            spk_dir = os.path.join(data_dir, spk)
            if not os.path.isdir(spk_dir):
                skips.add("missing", f"{spk_dir} (listed in {list_path})")
                continue
            for utt, path in _audio_index(spk_dir).items():
                files.append((spk, utt, path))
    return files


def _parse_eval(cn1, protocols, concat_enrol, skips):
    lists = os.path.join(cn1, "eval", "lists")
    test_dir = os.path.join(cn1, "eval", "test")
    if not os.path.isdir(test_dir):
        raise PreparationError(f"{CN1_VERSION}: missing folder {test_dir}")
    trials_raw = read_list(os.path.join(lists, "trials.lst"), CN1_VERSION)
    test_index = _audio_index(test_dir)
    data_index = _DataIndex(os.path.join(cn1, "data"))
    trials, unknown = [], []
    for number, fields in enumerate(trials_raw, start=1):
        if len(fields) != 3 or fields[2].lower() not in LABELS:
            raise PreparationError(
                f"{os.path.join(lists, 'trials.lst')}:{number}: expected '<model> <test> <1|0>', got {fields}"
            )
        resolved = _resolve_test(fields[1], test_index, data_index)
        if resolved is None:
            unknown.append(fields[1])
            continue
        trials.append((LABELS[fields[2].lower()], fields[0], resolved))
    models = sorted({m for _, m, _ in trials})
    enrol_map, enrol_files = {}, {}
    if "avg" in protocols or ("concat" in protocols and concat_enrol == "write"):
        map_path = os.path.join(lists, "enroll.map")
        for fields in read_list(map_path, CN1_VERSION):
            utts = []
            for token in fields[1:]:
                spk, utt = _data_key(token)
                path = data_index.get(spk, utt) if spk else None
                if path is None:
                    skips.add("missing", f"{token} (listed in {map_path})")
                else:
                    utts.append((f"{spk}/{utt}", path))
            enrol_map[fields[0]] = utts
        unknown += [m for m in models if m not in enrol_map]
    if "concat" in protocols and concat_enrol == "corpus":
        lst_path = os.path.join(lists, "enroll.lst")
        enroll_dir = os.path.join(cn1, "eval", "enroll")
        if not os.path.isdir(enroll_dir):
            raise PreparationError(f"{CN1_VERSION}: missing folder {enroll_dir}")
        enroll_index = _audio_index(enroll_dir)
        listed = {}
        for fields in read_list(lst_path, CN1_VERSION):
            stem = os.path.basename(strip_audio_ext(fields[1])) if len(fields) > 1 else fields[0]
            listed[fields[0]] = stem
            if stem in enroll_index:
                enrol_files[fields[0]] = enroll_index[stem]
            else:
                skips.add("missing", f"{fields[1] if len(fields) > 1 else stem} (listed in {lst_path})")
        unknown += [m for m in models if m not in listed]
    if unknown:
        raise PreparationError(
            f"{os.path.join(lists, 'trials.lst')}: {len(unknown)} entr(y/ies) name no utterance or model of "
            f"{CN1_VERSION}; first: {', '.join(sorted(set(unknown))[:5])}"
        )
    return trials, enrol_map, enrol_files


def _eval_paths(trials, enrol_map, enrol_files):
    """``{path: manifest ID}`` of every evaluation file: tests, ``enroll.map`` utterances, corpus enrolments."""
    eval_paths = {path: uid for _, _, (uid, path) in trials}
    for utts in enrol_map.values():
        eval_paths.update({path: uid for uid, path in utts})
    for model, path in enrol_files.items():
        eval_paths[path] = f"enroll/{model}"
    return eval_paths


def _training_rows(train_files, durations, options, data_folder, combined_dir):
    """Training rows, consecutive segments of one speaker and genre combined up to ``min_duration``,
    and the ``{out_path: in_paths}`` of the combined files ``combine_mode="write"`` needs.
    """
    # The reader owns the column's format; imported here, not at the top, because it loads torch.
    from speechbrain_ext.data import WAV_LIST_COLUMN, WAV_LIST_SEP

    groups = {}
    for spk, utt, path in train_files:
        if path in durations:
            groups.setdefault((spk, genre_of(utt)), []).append((utt, path))
    train_rows, jobs = [], {}
    for (spk, _genre), members in sorted(groups.items()):
        ranges = (
            group_short_segments([durations[p] for _, p in members], options["min_duration"])
            if options["min_duration"] > 0
            else [(i, i + 1) for i in range(len(members))]
        )
        for start, end in ranges:
            part = members[start:end]
            rel = [root_relative(p, data_folder) for _, p in part]
            row = audio_row(f"{spk}/{part[0][0]}", part[0][1], sum(durations[p] for _, p in part), data_folder, spk)
            row[WAV_LIST_COLUMN] = WAV_LIST_SEP.join(rel)
            if len(part) > 1:
                row["ID"] = f"{spk}/{part[0][0]}-comb{len(part)}"
                if options["combine_mode"] == "write":
                    out = os.path.join(combined_dir, "train", spk, f"{part[0][0]}-comb{len(part)}.flac")
                    jobs[out] = [p for _, p in part]
                    row["wav"] = out
            train_rows.append(row)
    return train_rows, jobs


def _enrolment_rows(models, enrol_map, enrol_files, durations, options, data_folder, combined_dir, num_workers):
    """CNC-Eval-Concat enrolments: ``{model: enrol ID}``, their rows, and the files written for them."""
    enrol_ids, rows, jobs = {}, {}, {}
    if "concat" not in options["protocols"]:
        return enrol_ids, rows, jobs
    for model in models:
        uid = f"enroll/{model}"
        if options["concat_enrol"] == "corpus":
            path = enrol_files.get(model)
            if path in durations:
                rows[uid] = audio_row(uid, path, durations[path], data_folder, model.split("-")[0])
                enrol_ids[model] = uid
        else:
            paths = [p for _, p in enrol_map.get(model, []) if p in durations]
            if paths:
                jobs[os.path.join(combined_dir, "enroll", f"{model}.flac")] = paths
                enrol_ids[model] = uid
    for out, duration in _write_all(jobs, num_workers).items():
        model = os.path.basename(out)[: -len(".flac")]
        uid = f"enroll/{model}"
        rows[uid] = {"ID": uid, "duration": duration, "wav": out, "spk_id": model.split("-")[0]}
    return enrol_ids, rows, jobs


def _protocol_trials(trials, protocols, avg_map, enrol_ids, eval_rows):
    """``{condition: trials}`` of the requested protocols, keeping trials whose audio is readable,
    and ``{condition: number dropped}``.
    """
    conditions, dropped = {}, {}
    if "avg" in protocols:
        kept = [(lab, m, t[0]) for lab, m, t in trials if m in avg_map and t[0] in eval_rows]
        conditions["cnc_eval_avg"], dropped["cnc_eval_avg"] = kept, len(trials) - len(kept)
    if "concat" in protocols:
        kept = [(lab, enrol_ids[m], t[0]) for lab, m, t in trials if m in enrol_ids and t[0] in eval_rows]
        conditions["cnc_eval_concat"], dropped["cnc_eval_concat"] = kept, len(trials) - len(kept)
    return conditions, dropped


def _evaluation(trials, enrol_map, enrol_files, eval_paths, durations, options, data_folder, combined_dir,
                num_workers):
    """Evaluation rows (by ID), protocol trials, dropped counts, the avg enrolment map, enrolment files written."""
    eval_rows = {
        uid: audio_row(uid, path, durations[path], data_folder, speaker_of(uid))
        for path, uid in eval_paths.items()
        if path in durations and not uid.startswith("enroll/")
    }
    models = sorted({m for _, m, _ in trials})
    enrol_ids, enrol_rows, enrol_jobs = _enrolment_rows(
        models, enrol_map, enrol_files, durations, options, data_folder, combined_dir, num_workers
    )
    eval_rows.update(enrol_rows)
    avg_map = {m: [uid for uid, p in utts if p in durations] for m, utts in sorted(enrol_map.items())}
    avg_map = {m: u for m, u in avg_map.items() if u}
    conditions, dropped = _protocol_trials(trials, options["protocols"], avg_map, enrol_ids, eval_rows)
    if "avg" not in options["protocols"]:  # enroll.map utterances only serve the avg protocol
        used = {t for _, _, t in conditions.get("cnc_eval_concat", [])} | set(enrol_ids.values())
        eval_rows = {k: v for k, v in eval_rows.items() if k in used}
    return eval_rows, conditions, dropped, avg_map, enrol_jobs


def _write_protocol_splits(save_folder, conditions, eval_rows, avg_map):
    """One evaluation split per protocol (manifest + trial folder, see the module docstring);
    ``(outputs, {split: {"annotation", "trials", "utterances", "trials_count"}})``.
    """
    outputs, splits = [], {}
    for protocol, (split, condition) in PROTOCOL_SPLITS.items():
        if condition not in conditions:
            continue
        trials = conditions[condition]
        models = {m for _, m, _ in trials}
        needed = {t for _, _, t in trials} | models
        if protocol == "avg":
            needed |= {u for m in models for u in avg_map[m]}
        rows = [eval_rows[uid] for uid in sorted(needed) if uid in eval_rows]
        manifest = os.path.join(save_folder, f"{split}.csv")
        write_manifest(manifest, rows)
        outputs += [manifest, *write_conditions(save_folder, split, {condition: trials})]
        if protocol == "avg":
            map_path = os.path.join(save_folder, "trials", split, "enrol.map")
            write_enrol_map(map_path, {m: avg_map[m] for m in sorted(models)})
            outputs.append(map_path)
        splits[split] = {"annotation": f"{split}.csv", "trials": f"trials/{split}", "utterances": len(rows),
                         "trials_count": len(trials)}
    return outputs, splits


def _build(data_folder, save_folder, options, num_workers):
    """Read the corpus, combine and concatenate audio, write the outputs; ``(outputs, summary)``."""
    skips = SkipLog()
    trials, enrol_map, enrol_files = _parse_eval(
        os.path.join(data_folder, CN1_FOLDER), options["protocols"], options["concat_enrol"], skips
    )
    eval_speakers = {m.split("-")[0] for _, m, _ in trials} | {speaker_of(t[0]) for _, _, t in trials}
    train_files = _collect_training(data_folder, options["use_cnceleb2"], eval_speakers, skips)
    eval_paths = _eval_paths(trials, enrol_map, enrol_files)
    durations = read_durations(
        [p for _, _, p in train_files] + sorted(eval_paths), skips, num_workers, label=CORPUS
    )
    combined_dir = os.path.join(save_folder, "combined")
    train_rows, jobs = _training_rows(train_files, durations, options, data_folder, combined_dir)
    written = _write_all(jobs, num_workers)
    eval_rows, conditions, dropped, avg_map, enrol_jobs = _evaluation(
        trials, enrol_map, enrol_files, eval_paths, durations, options, data_folder, combined_dir, num_workers
    )
    extra = ("wav_list",) if options["combine_mode"] == "list" else ()  # speechbrain_ext.data.WAV_LIST_COLUMN
    eval_list = sorted(eval_rows.values(), key=lambda r: r["ID"])
    outputs, summary = write_verification_outputs(save_folder, train_rows, eval_list, conditions, options, extra)
    if "avg" in options["protocols"]:
        map_path = os.path.join(save_folder, "trials", "eval", "enrol.map")
        write_enrol_map(map_path, avg_map)
        outputs.append(map_path)
    split_outputs, summary["eval_splits"] = _write_protocol_splits(save_folder, conditions, eval_rows, avg_map)
    outputs += split_outputs
    keep = set(written) | set(enrol_jobs)
    _prune(combined_dir, keep)
    if not keep and os.path.isdir(combined_dir):
        shutil.rmtree(combined_dir)
    outputs += sorted(keep)
    for name, n in dropped.items():
        if n:
            logger.warning("%s: %s loses %d trial(s) naming unreadable or absent audio", CORPUS, name, n)
    skips.log(CORPUS)
    summary["combined_files"] = len(written)
    summary["trials_dropped"] = {n: d for n, d in dropped.items() if d}
    summary["skipped"] = skips.as_dict()
    return outputs, summary


def prepare_cnceleb(data_folder, save_folder, use_cnceleb2=True, min_duration=5.0, combine_mode="write",
                    protocols=("avg", "concat"), concat_enrol="corpus", n_valid_speakers=20,
                    valid_max_targets_per_speaker=10, seed=1234, nontargets_per_target=3, num_workers=None):
    """Prepare CN-Celeb1 (+ CN-Celeb2) for speaker verification (see the module docstring).

    Arguments
    ---------
    data_folder : str
        Folder holding ``CN-Celeb_flac/`` (and ``CN-Celeb2_flac/``).
    save_folder : str
        Where manifests, trials, combined audio and ``prepare.json`` go.
    use_cnceleb2 : bool
        Add the CN-Celeb2 speakers to training.
    min_duration : float
        Combine short training segments of one speaker and genre up to this many
        seconds (0: no combination).
    combine_mode : str
        ``write`` (concatenated FLACs in ``save_folder``) or ``list`` (``wav_list``
        column, read as the concatenation of its segments by the data pipeline).
    protocols : sequence of str
        ``avg`` (CNC-Eval-Avg) and/or ``concat`` (CNC-Eval-Concat).
    concat_enrol : str
        ``corpus`` (the corpus's ``eval/enroll`` files, as WeSpeaker) or ``write``
        (concatenate the enroll.map utterances).
    n_valid_speakers : int
        Validation speakers held out of the training speakers (by ``seed``).
    valid_max_targets_per_speaker : int or None
        Cap on test utterances per validation speaker in ``trials/valid/all.txt``.
    seed : int
        Seed of the validation choice and trials.
    nontargets_per_target : int
        Non-target validation trials per target trial.
    num_workers : int or None
        Threads reading headers and writing audio (does not change the outputs).

    Returns
    -------
    dict
        Summary: utterances/speakers per split, trials per protocol, skips, ``status``.

    Example
    -------
    >>> import tempfile
    >>> prepare_cnceleb(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: CN-Celeb1 v2 (...): missing folder .../CN-Celeb_flac/eval/test
    """
    protocols = check_subset("protocols", sorted(set(protocols)), ("avg", "concat"))
    if combine_mode not in ("write", "list"):
        raise ValueError(f"combine_mode must be 'write' or 'list', not {combine_mode!r}")
    if concat_enrol not in ("write", "corpus"):
        raise ValueError(f"concat_enrol must be 'write' or 'corpus', not {concat_enrol!r}")
    options = {
        "corpus": "cnceleb",
        "prep_version": 2,
        "use_cnceleb2": bool(use_cnceleb2),
        "min_duration": float(min_duration),
        "combine_mode": combine_mode,
        "protocols": protocols,
        "concat_enrol": concat_enrol if "concat" in protocols else None,
        **validation_options(n_valid_speakers, valid_max_targets_per_speaker, seed, nontargets_per_target),
    }
    build = functools.partial(_build, os.path.abspath(data_folder), os.path.abspath(save_folder), options, num_workers)
    return run_preparation(CORPUS, save_folder, options, build)
