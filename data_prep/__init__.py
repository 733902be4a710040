"""Corpus preparations: one module per corpus (``data_prep.<corpus>.prepare_<corpus>``).

Each writes SpeechBrain CSV manifests and trial lists in the layout documented in
:mod:`data_prep.common`.
"""
