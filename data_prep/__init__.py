"""Corpus preparations: one module per corpus (``data_prep.<corpus>.prepare_<corpus>``).

Each writes SpeechBrain CSV manifests and trial lists in the layout documented in
:mod:`data_prep.common` (which also holds the writers, the option hash, the lock
and the trial generators). :mod:`data_prep.corpus_utils` holds the steps the
preparations share (counted skips, header reads, the lock / idempotence / marker
skeleton, the validation split of the verification corpora, audio written by a
preparation); :mod:`data_prep.emotional` the template of the emotional corpora
(ESD, CREMA-D, RAVDESS, Dusha), each of which states its layout as data.
:mod:`data_prep.noise` writes the MUSAN / RIRS_NOISES manifests of augmentation;
:mod:`data_prep.convert` converts VoxCeleb2's ``.m4a`` to WAV/FLAC
(``python -m data_prep.convert``). :mod:`data_prep.other_engines` writes the other-engine check
(voices of Flite and Festival, never trained on).
``data_prep`` may import :mod:`speechbrain_ext`; the package never imports ``data_prep``.
"""
