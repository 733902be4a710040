"""Manifest checks, audio reading and the datasets every recipe trains and evaluates on.

Bad audio never kills a run: :class:`AudioReader` turns a missing, corrupt, empty or
non-finite file into an *issue* string that travels with the example;
:func:`collate_skipping` drops those examples from the batch and reports them, and the
Brain counts them per epoch and stops only when their share passes a limit.
Resampling and down-mixing are done on the fly and counted the same way.
"""

import contextlib
import csv
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import torch
import torchaudio
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.seeding import keyed_draw

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("ID", "duration", "wav", "spk_id")
#: Optional manifest column: the segments an utterance is the concatenation of, joined by
#: :data:`WAV_LIST_SEP` (``data_prep.cnceleb``'s ``combine_mode="list"``); read instead of ``wav``.
WAV_LIST_COLUMN = "wav_list"
WAV_LIST_SEP = ";"
ISSUE_OK = ""
ISSUE_RESAMPLED = "resampled"
ISSUE_DOWNMIXED = "downmixed"
ERROR_PREFIX = "error:"


class ManifestError(SpeechBrainExtError, ValueError):
    """A manifest is malformed; the message names the file, line and id or column.

    Example
    -------
    >>> str(ManifestError("train.csv line 3: duplicate ID 'u1'"))
    "train.csv line 3: duplicate ID 'u1'"
    """


def check_manifest(path, required_columns=REQUIRED_COLUMNS):
    """Validate a CSV manifest before it is used: header, unique IDs, numeric durations.

    Arguments
    ---------
    path : str
        The CSV manifest.
    required_columns : sequence of str
        Columns that must be present.

    Returns
    -------
    list of str
        The IDs in file order.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(p, "w").write("ID,duration,wav,spk_id\\nu1,1.0,a.wav,s1\\nu1,2.0,b.wav,s1\\n")
    >>> check_manifest(p)
    Traceback (most recent call last):
    ...
    speechbrain_ext.data.ManifestError: ...m.csv line 3: duplicate ID 'u1' (first on line 2)
    """
    if not os.path.isfile(path):
        raise ManifestError(f"manifest not found: {path} (did data preparation run?)")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ManifestError(f"{path}: empty manifest (no header line)")
        missing = [c for c in required_columns if c not in header]
        if missing:
            raise ManifestError(f"{path} line 1: missing column(s) {missing}; header is {header}")
        id_col, dur_col = header.index("ID"), header.index("duration")
        first_line, ids = {}, []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ManifestError(f"{path} line {line}: {len(row)} fields, header has {len(header)}")
            utt = row[id_col]
            if utt in first_line:
                raise ManifestError(
                    f"{path} line {line}: duplicate ID {utt!r} (first on line {first_line[utt]})"
                )
            first_line[utt] = line
            try:
                duration = float(row[dur_col])
            except ValueError:
                raise ManifestError(
                    f"{path} line {line}: duration {row[dur_col]!r} of {utt!r} is not a number"
                ) from None
            if not np.isfinite(duration) or duration < 0:
                raise ManifestError(f"{path} line {line}: duration {duration} of {utt!r} is invalid")
            ids.append(utt)
    if not ids:
        raise ManifestError(f"{path}: the manifest lists no utterance")
    return ids


class AudioReader:
    """Reads a wav (or any soundfile format), optionally a random crop, at one sample rate.

    Problems become an issue string instead of an exception, so one bad file costs one
    skipped utterance: ``"error: <reason> (<path>)"`` for unusable audio,
    ``"resampled"``/``"downmixed"`` when the file was converted.

    A crop reads only its own frames: the file is opened once, its length taken from
    the header, and ``SoundFile.seek`` + ``read`` fetch the crop (WAV: a direct seek;
    FLAC: libsndfile seeks to the frame holding the first sample and decodes from
    there), never the whole file. A list of paths is read as their concatenation
    (same rate and channels), the crop drawn over the total length and read from the
    segments it spans.

    Arguments
    ---------
    sample_rate : int
        Target rate; other rates are resampled.
    crop_seconds : float or None
        Length of a random crop (training); ``None`` reads the whole file.
    seed : int
        Seed of the crop positions; the position of a crop depends only on
        (seed, epoch, utterance id) and the length of the audio, so it is the same in
        any DataLoader worker and after a resume.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros((8000, 2), dtype="float32"), 8000)
    >>> sig, issue = AudioReader(16000)(path, "a")
    >>> sig.shape, issue
    (torch.Size([16000]), 'resampled,downmixed')
    >>> AudioReader(16000)(path + "x", "b")[1]  # doctest: +ELLIPSIS
    'error: cannot open (file not found) (...a.wavx)'
    >>> AudioReader(8000, crop_seconds=1.5)([path, path], "c")[0].shape  # 2 s of two 1 s segments
    torch.Size([12000])
    >>> _ = open(path, "wb").write(b"RIFF....WAVE")
    >>> AudioReader(16000)(path, "c")[1].startswith("error: cannot open")
    True
    """

    def __init__(self, sample_rate=16000, crop_seconds=None, seed=0):
        self.sample_rate = sample_rate
        self.crop_seconds = crop_seconds
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch):
        """Change the crop positions for a new epoch."""
        self.epoch = epoch

    def _offset(self, utt_id, max_offset):
        return keyed_draw(self.seed, self.epoch, utt_id, sep="|") % (max_offset + 1)

    def span(self, frames, samplerate, utt_id):
        """``(start, stop)`` frames read of an audio of ``frames`` frames: the keyed crop, or everything.

        Example
        -------
        >>> reader = AudioReader(16000, crop_seconds=1.0, seed=3)
        >>> start, stop = reader.span(320000, 16000, "u1")
        >>> stop - start, reader.span(8000, 16000, "u1")
        (16000, (0, 8000))
        """
        if self.crop_seconds:
            crop = int(round(self.crop_seconds * samplerate))
            if frames > crop:
                start = self._offset(utt_id, frames - crop)
                return start, start + crop
        return 0, frames

    def __call__(self, path, utt_id=""):
        """Return ``(signal [S] float32, issue)``; ``signal`` is empty when the issue is an error.

        ``path`` is one file or a list of files read as their concatenation.
        """
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        with contextlib.ExitStack() as stack:
            files = []
            for p in paths:
                handle, issue = _open_audio(p)
                if issue:
                    return torch.zeros(0), issue
                files.append(stack.enter_context(handle))
            issue = _mismatch(files, paths)
            if issue:
                return torch.zeros(0), issue
            frames = sum(f.frames for f in files)
            if frames <= 0:
                return torch.zeros(0), f"{ERROR_PREFIX} zero-length audio ({_name(paths)})"
            rate = files[0].samplerate
            data, issue = _read_span(files, paths, *self.span(frames, rate, utt_id))
        if issue:
            return torch.zeros(0), issue
        return self._finish(data, rate, paths)

    def _finish(self, data, rate, paths):
        """Check the samples, resample and down-mix: ``(signal, issue)``."""
        if data.shape[0] == 0:
            return torch.zeros(0), f"{ERROR_PREFIX} zero-length audio ({_name(paths)})"
        if not np.isfinite(data).all():
            return torch.zeros(0), f"{ERROR_PREFIX} non-finite samples ({_name(paths)})"
        issues = []
        sig = torch.from_numpy(np.ascontiguousarray(data.T))
        if rate != self.sample_rate:
            sig = torchaudio.functional.resample(sig, rate, self.sample_rate)
            issues.append(ISSUE_RESAMPLED)
        if sig.shape[0] > 1:
            sig = sig.mean(dim=0, keepdim=True)
            issues.append(ISSUE_DOWNMIXED)
        return sig[0].contiguous(), ",".join(issues)


def _name(paths):
    return WAV_LIST_SEP.join(str(p) for p in paths)


def _open_audio(path):
    """``(SoundFile, "")`` or ``(None, issue)`` naming the path."""
    if not os.path.isfile(path):  # libsndfile would only say "System error"
        return None, f"{ERROR_PREFIX} cannot open (file not found) ({path})"
    try:
        return sf.SoundFile(path), ""
    except Exception as err:  # soundfile raises several types for unreadable files
        return None, f"{ERROR_PREFIX} cannot open ({type(err).__name__}: {err}) ({path})"


def _mismatch(files, paths):
    """An issue when the segments of a list differ in rate or channels, else ``""``."""
    formats = {(f.samplerate, f.channels) for f in files}
    if len(formats) > 1:
        return f"{ERROR_PREFIX} segments of different rates or channels {sorted(formats)} ({_name(paths)})"
    return ""


def _read_span(files, paths, start, stop):
    """Frames ``[start, stop)`` of the concatenation of ``files``: ``(data [S, C], issue)``."""
    parts, offset = [], 0
    for handle, path in zip(files, paths):
        lo, hi = max(start - offset, 0), min(stop - offset, handle.frames)
        offset += handle.frames
        if lo >= hi:
            continue
        try:
            handle.seek(lo)
            parts.append(handle.read(hi - lo, dtype="float32", always_2d=True))
        except Exception as err:
            return None, f"{ERROR_PREFIX} cannot decode ({type(err).__name__}: {err}) ({path})"
    channels = files[0].channels
    return (np.concatenate(parts) if parts else np.zeros((0, channels), "float32")), ""


@dataclass
class AudioIssueCounter:
    """Per-epoch tally of skipped and converted utterances, with the first few paths.

    Example
    -------
    >>> c = AudioIssueCounter()
    >>> c.update(["", "resampled", "error: zero-length audio (x.wav)"], ["a", "b", "c"])
    >>> c.seen, c.skipped, c.resampled, c.skipped_share
    (3, 1, 1, 0.3333333333333333)
    """

    seen: int = 0
    skipped: int = 0
    resampled: int = 0
    downmixed: int = 0
    first_errors: list = field(default_factory=list)
    max_listed: int = 5

    def update(self, issues, ids):
        """Count the issues of one batch (``issues`` and ``ids`` aligned)."""
        for issue, utt in zip(issues, ids):
            self.seen += 1
            if issue.startswith(ERROR_PREFIX):
                self.skipped += 1
                if len(self.first_errors) < self.max_listed:
                    self.first_errors.append(f"{utt}: {issue[len(ERROR_PREFIX):].strip()}")
                    logger.warning("skipping utterance %s: %s", utt, issue)
            else:
                self.resampled += ISSUE_RESAMPLED in issue
                self.downmixed += ISSUE_DOWNMIXED in issue

    @property
    def skipped_share(self):
        """Fraction of the seen utterances that were skipped."""
        return self.skipped / self.seen if self.seen else 0.0

    def reset(self):
        """Start a new epoch."""
        self.seen = self.skipped = self.resampled = self.downmixed = 0
        self.first_errors = []


def collate_skipping(examples):
    """Collate like SpeechBrain's ``PaddedBatch`` after dropping examples whose audio failed.

    The returned batch carries ``all_ids`` and ``all_issues`` (every example, dropped
    or not) so the training loop can count them even when workers did the reading.
    When every example failed, the batch has ``batchsize == 0`` and no data keys.

    Example
    -------
    >>> ex = [{"id": "a", "sig": torch.ones(3), "audio_issue": ""},
    ...       {"id": "b", "sig": torch.zeros(0), "audio_issue": "error: x"}]
    >>> batch = collate_skipping(ex)
    >>> batch.batchsize, batch.id, batch.all_ids
    (1, ['a'], ['a', 'b'])
    """
    good = [e for e in examples if not e.get("audio_issue", "").startswith(ERROR_PREFIX)]
    batch = PaddedBatch(good) if good else EmptyBatch()
    batch.all_ids = [e["id"] for e in examples]
    batch.all_issues = [e.get("audio_issue", "") for e in examples]
    return batch


class EmptyBatch:
    """What :func:`collate_skipping` returns when no example of a batch could be read.

    Example
    -------
    >>> EmptyBatch().batchsize
    0
    """

    batchsize = 0

    def to(self, *args, **kwargs):
        """Nothing to move."""
        return self


def load_dataset(manifest, data_root, required_columns=REQUIRED_COLUMNS):
    """Check a manifest then load it as a ``DynamicItemDataset`` with ``$data_root`` replaced.

    Arguments
    ---------
    manifest : str
        CSV manifest.
    data_root : str
        Replacement of ``$data_root`` in the ``wav`` column.
    required_columns : sequence of str
        Columns that must exist.

    Returns
    -------
    DynamicItemDataset

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(p, "w").write("ID,duration,wav,spk_id\\nu1,1.0,$data_root/a.wav,s1\\n")
    >>> load_dataset(p, "/corpus").data["u1"]["wav"]
    '/corpus/a.wav'
    """
    check_manifest(manifest, required_columns)
    return DynamicItemDataset.from_csv(csv_path=manifest, replacements={"data_root": str(data_root)})


def add_audio(dataset, reader, key="sig"):
    """Add the dynamic items ``<key>`` (a 1-D signal) and ``audio_issue`` read by ``reader``.

    A manifest with a :data:`WAV_LIST_COLUMN` column is read from it: each utterance is
    the concatenation of its listed segments (its ``duration``), not its ``wav``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> sf.write(os.path.join(d, "a.wav"), np.zeros(1600, dtype="float32"), 16000)
    >>> p = os.path.join(d, "m.csv")
    >>> _ = open(p, "w").write("ID,duration,wav,spk_id\\nu1,0.1,$data_root/a.wav,s1\\n")
    >>> ds = add_audio(load_dataset(p, d), AudioReader(16000))
    >>> ds.set_output_keys(["id", "sig", "audio_issue"])
    >>> ds[0]["sig"].shape
    torch.Size([1600])
    """
    issue_key = "audio_issue" if key == "sig" else f"{key}_issue"
    first = next(iter(dataset.data.values()), {})
    column = WAV_LIST_COLUMN if WAV_LIST_COLUMN in first else "wav"

    def read(wav, utt_id):
        sig, issue = reader(wav.split(WAV_LIST_SEP) if column == WAV_LIST_COLUMN else wav, utt_id)
        yield sig
        yield issue

    dataset.add_dynamic_item(read, takes=[column, "id"], provides=[key, issue_key])
    return dataset


def speaker_label_encoder(dataset, path, expected=None):
    """Fit (or load) the speaker label encoder of the training set and save it to ``path``.

    Arguments
    ---------
    dataset : DynamicItemDataset
        The training set (column ``spk_id``).
    path : str
        ``label_encoder.txt`` in the experiment folder; reused on resume.
    expected : int or None
        The classifier's output size; a mismatch is an error naming both numbers.

    Returns
    -------
    CategoricalEncoder

    Example
    -------
    >>> import tempfile, os
    >>> ds = DynamicItemDataset({"a": {"spk_id": "s1"}, "b": {"spk_id": "s2"}})
    >>> enc = speaker_label_encoder(ds, os.path.join(tempfile.mkdtemp(), "label_encoder.txt"), expected=2)
    >>> len(enc)
    2
    """
    encoder = CategoricalEncoder()
    encoder.load_or_create(path, from_didatasets=[dataset], output_key="spk_id")
    encoder.ignore_len()
    if expected is not None and len(encoder) != expected:
        raise ManifestError(
            f"the training manifest has {len(encoder)} speakers but the hparams set n_speakers={expected}; "
            f"run again with --n_speakers {len(encoder)} (label encoder: {path})"
        )
    return encoder


def add_speaker_label(dataset, encoder):
    """Add the dynamic item ``spk_id_encoded`` (a LongTensor of shape [1]).

    Example
    -------
    >>> ds = DynamicItemDataset({"a": {"spk_id": "s2"}})
    >>> enc = CategoricalEncoder(); enc.update_from_iterable(["s1", "s2"])
    >>> ds = add_speaker_label(ds, enc); ds.set_output_keys(["spk_id_encoded"])
    >>> ds[0]["spk_id_encoded"].tolist()
    [1]
    """

    def encode(spk_id):
        return torch.LongTensor([encoder.encode_label(spk_id)])

    dataset.add_dynamic_item(encode, takes="spk_id", provides="spk_id_encoded")
    return dataset


def manifest_column(dataset, column):
    """One column of a loaded manifest, in dataset order (for samplers and partner tables).

    Example
    -------
    >>> manifest_column(DynamicItemDataset({"a": {"spk_id": "s1"}, "b": {"spk_id": "s2"}}), "spk_id")
    ['s1', 's2']
    """
    missing = [i for i in dataset.data_ids if column not in dataset.data[i]]
    if missing:
        raise ManifestError(f"the manifest has no column {column!r} (first id without it: {missing[0]!r})")
    return [dataset.data[i][column] for i in dataset.data_ids]
