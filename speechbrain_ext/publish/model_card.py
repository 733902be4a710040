"""The model card (``README.md``) of an export: Hub front matter, results, threshold, usage, configuration.

The card is built from what the export knows (``info``: system, corpus, threshold,
parity...), the experiment's hyperparameters, its ``metrics.json`` and the files
written; each section is one function, in the order the card shows them.
"""

from speechbrain_ext.hparams import yaml_tag
from speechbrain_ext.publish.calibration import calibration_card
from speechbrain_ext.publish.experiment import class_paths, encoder_name, plain, short_class
from speechbrain_ext.publish.layout import (
    CALIBRATION,
    CARD,
    DEFAULT_PRIOR,
    HPARAMS,
    ONNX_FILE,
    PARITY_TOLERANCE,
    TORCHSCRIPT_FILE,
)

__all__ = ["config_rows", "describe_losses", "model_card"]

_CITATIONS = """\
```bibtex
@inproceedings{li2023discriminative,
  title={Discriminative Speaker Representation via Contrastive Learning with Class-Aware Attention in Angular Space},
  author={Li, Zhe and Mak, Man-Wai and Meng, Helen},
  booktitle={ICASSP}, year={2023}, note={arXiv:2210.16622}
}
@article{tian2025emotion,
  title={Learning Emotion-Invariant Speaker Representations for Speaker Verification},
  author={Tian, Jingguang and Hu, Xinhui and Xu, Xinkang},
  journal={arXiv preprint arXiv:2505.18498}, year={2025}
}
@article{speechbrain_v1,
  title={Open-Source Conversational AI with SpeechBrain 1.0},
  author={Ravanelli, Mirco and Parcollet, Titouan and Moumen, Adel and de Langen, Sylvain and Subakan, Cem
          and Plantinga, Peter and Wang, Yingzhi and Mousavi, Pooneh and Della Libera, Luca
          and Ploujnikov, Artem and others},
  journal={Journal of Machine Learning Research}, year={2024}, note={arXiv:2407.00463}
}
@misc{speechbrain,
  title={SpeechBrain: A General-Purpose Speech Toolkit},
  author={Ravanelli, Mirco and Parcollet, Titouan and Plantinga, Peter and Rouhe, Aku and Cornell, Samuele
          and Lugosch, Loren and Subakan, Cem and Dawalatabad, Nauman and Heba, Abdelwahab and Zhong, Jianyuan
          and others},
  year={2021}, eprint={2106.04624}, archivePrefix={arXiv}
}
```
"""

_CLOSING = [
    "`label_encoder.ckpt` is a copy of `label_encoder.txt` under the name SpeechBrain's Pretrainer loads.",
    "",
    "## Limitations",
    "",
    "- Trained on one corpus with few speakers; speaker verification on other data (channels, languages, "
    "emotions, durations) needs evaluation, and usually a new threshold, there.",
    "- Input: mono 16 kHz speech (other rates and channel counts are resampled / down-mixed by SpeechBrain's "
    "audio normaliser).",
    "",
    "## Citation",
    "",
    "The methods of this repository come from the two papers below; the model runs on SpeechBrain.",
    "",
    _CITATIONS,
    "## License",
    "",
    "Apache-2.0.",
    "",
]


# ----------------------------------------------------------------------------- configuration rows


def _call_repr(node):
    """``ClassName(arg=value, ...)`` of a tagged mapping (scalar arguments and lists of scalars)."""
    args = plain(node) if isinstance(node, dict) else {}
    inner = ", ".join(f"{k}={v}" for k, v in args.items()
                      if not isinstance(v, dict | list) or (isinstance(v, list) and not any(
                          isinstance(x, dict | list) for x in v)))
    name = short_class(yaml_tag(node).split(":", 1)[1])
    return f"{name}({inner})" if inner else name


def _loss_weights(hp, balancer):
    """``{term: weight or None}`` of the loss terms: the balancer's fixed weights, else the YAML's ``*_loss``."""
    args = plain(balancer) if isinstance(balancer, dict) else {}
    weights = dict(args.get("weights") or {}) if isinstance(args.get("weights"), dict) else {}
    for group in (args.get("groups") or {}).values() if isinstance(args.get("groups"), dict) else []:
        if isinstance(group, dict):
            weights.update(group)
    if not weights:  # a balancer without fixed weights (MGDA): the terms the YAML defines
        weights = {k[: -len("_loss")]: None for k in hp if isinstance(k, str) and k.endswith("_loss")
                   and yaml_tag(hp[k])}
    return weights


def describe_losses(hp):
    """``[(row name, description)]`` of the loss terms, their balancing and the method's modules.

    Example
    -------
    >>> import ruamel.yaml
    >>> hp = ruamel.yaml.YAML().load("aam_margin: 0.2\\naam_scale: 30\\nloss_balancer: !new:x.Fixed\\n"
    ...                              "  weights: {aam: 1.0}\\n")
    >>> describe_losses(hp)
    [('loss: aam', 'AAM-softmax (margin 0.2, scale 30), weight 1.0'), ('loss balancing', 'Fixed')]
    """
    p = {k: plain(v) for k, v in hp.items() if isinstance(k, str)}
    balancer = hp.get("loss_balancer")
    rows = []
    for name, weight in _loss_weights(hp, balancer).items():
        if name.startswith("aam"):
            desc = f"AAM-softmax (margin {p.get('aam_margin', '?')}, scale {p.get('aam_scale', '?')})"
            if name != "aam":
                desc += " on the CopyPaste inputs" if "parallel" in name else ""
        else:
            node = next((hp[k] for k in (f"{name}_loss", name) if yaml_tag(hp.get(k))), None)
            desc = _call_repr(node) if node is not None else name
        rows.append((f"loss: {name}", desc + ("" if weight is None else f", weight {weight}")))
    if isinstance(balancer, dict) and yaml_tag(balancer):
        inner = balancer.get("inner")
        text = _call_repr(balancer) if not inner else f"{_call_repr(balancer)} of {_call_repr(inner)}"
        rows.append(("loss balancing", text))
    for key, label in (("class_aware_attention", "class-aware attention"), ("copypaste", "CopyPaste"),
                       ("emotion_mask", "emotion-aware masking"),
                       ("speed_perturb", "speed perturbation, each perturbed speaker a class")):
        if yaml_tag(hp.get(key)):
            rows.append((label, _call_repr(hp[key])))
    return rows


def _encoder_row(hp, n_params):
    """``Name (`class.path`): arg=value, ..., N M parameters``: the encoder by its class and its YAML sizes."""
    node = hp["embedding_model"]
    args = plain(node) if isinstance(node, dict) else {}
    sizes = ", ".join(f"{k}={v}" for k, v in args.items() if not isinstance(v, dict))
    path = yaml_tag(node).split(":", 1)[1]
    return f"{encoder_name(hp)} (`{path}`)" + (f": {sizes}" if sizes else "") + f", {n_params / 1e6:.2f} M parameters"


def _model_rows(hp, p, n_params, corpus, embedding_dim):
    """System, data, features, encoder and embedding rows (``p``: the plain hyperparameters)."""
    enc = p.get("embedding_model") if isinstance(p.get("embedding_model"), dict) else {}
    feats = p.get("compute_features") if isinstance(p.get("compute_features"), dict) else {}
    norm = p.get("mean_var_norm") if isinstance(p.get("mean_var_norm"), dict) else {}
    dim = embedding_dim if embedding_dim is not None else enc.get("lin_neurons", "?")
    return [
        ("system", f"`{p.get('system', '?')}`"),
        ("training data", f"{corpus}, {p.get('n_speakers', p.get('n_train_speakers', '?'))} training speakers"),
        ("features", f"{feats.get('n_mels', 40)} log-Mel filterbanks (25 ms / 10 ms), "
                     f"{norm.get('norm_type', 'global')} mean normalisation"
                     + ("" if norm.get("std_norm", True) is False else " + variance")),
        ("encoder", _encoder_row(hp, n_params)),
        ("embedding", f"{dim} dimensions, cosine scoring"),
    ]


def _training_rows(hp, p, meta):
    """Optimiser, batches, epochs, augmentation and seed rows."""
    opt = hp.get("opt_class")
    opt_name = short_class(yaml_tag(opt).split(":", 1)[1]) if yaml_tag(opt) else "?"
    rows = [
        ("optimiser", f"{opt_name}, lr {p.get('lr', '?')} → {p.get('lr_final', '?')}, "
                      f"weight decay {p.get('weight_decay', '?')}"),
        ("batches", f"{p.get('batch_size', '?')} crops of {p.get('crop_seconds', '?')} s"
                    + (f", {_call_repr(hp['train_sampler'])}" if yaml_tag(hp.get("train_sampler")) else "")),
        ("epochs", f"{p.get('number_of_epochs', '?')} (checkpoint of epoch {meta.get('epoch', '?')}, "
                   f"lowest validation EER {meta.get('EER', '?')} %)"),
    ]
    aug = hp.get("wav_augment")
    if isinstance(aug, dict) and yaml_tag(aug):
        names = [short_class(c) for c in class_paths(aug.get("augmentations", []))]
        rows.append(("augmentation", ", ".join(names) or short_class(yaml_tag(aug).split(":", 1)[1])))
    rows.append(("seed", str(p.get("seed", "?"))))
    return rows


def config_rows(hp, meta, n_params, corpus, embedding_dim=None):
    """``[(row name, value)]`` of the card's training-configuration table.

    Example
    -------
    >>> import ruamel.yaml
    >>> hp = ruamel.yaml.YAML().load("system: demo\\nembedding_model: !new:speechbrain_ext.encoders.ResNet34\\n"
    ...                              "  channels: 16\\n  lin_neurons: 192\\n")
    >>> rows = dict(config_rows(hp, {"epoch": 2}, 1.82e6, "SynthEmo"))
    >>> rows["encoder"]
    'ResNet34 (`speechbrain_ext.encoders.ResNet34`): channels=16, lin_neurons=192, 1.82 M parameters'
    >>> rows["embedding"]
    '192 dimensions, cosine scoring'
    """
    p = {k: plain(v) for k, v in hp.items() if isinstance(k, str)}
    return _model_rows(hp, p, n_params, corpus, embedding_dim) + describe_losses(hp) + _training_rows(hp, p, meta)


# ----------------------------------------------------------------------------- card sections


def _front_matter(corpus, metrics, name, encoder):
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for cond, m in metrics["conditions"].items():
        common = dict(
            task_type="speaker-verification",
            task_name="Speaker Verification",
            dataset_type=corpus.lower(),
            dataset_name=f"{corpus} (evaluation trials)",
            dataset_config=str(cond),
            dataset_split="eval",
        )
        results.append(EvalResult(metric_type="eer", metric_value=round(100 * float(m["eer"]), 3),
                                  metric_name=f"EER (%), {cond}", **common))
        if "min_dcf" in m:
            p_target = m.get("min_dcf_p_target", 0.01)
            results.append(EvalResult(metric_type="min_dcf", metric_value=round(float(m["min_dcf"]), 4),
                                      metric_name=f"minDCF (p_target={p_target:g}), {cond}", **common))
    data = ModelCardData(
        library_name="speechbrain",
        license="apache-2.0",
        tags=["speaker-verification", "speaker-recognition", "speaker-embeddings", "speechbrain", encoder,
              "pytorch", "audio"],
        datasets=[corpus],
        metrics=["eer", "min_dcf"],
        model_name=name,
        eval_results=results,
    )
    return data.to_yaml()


def _intro(name, corpus, system, encoder, needs_package):
    import speechbrain

    lines = [
        f"# {name}: {encoder} speaker verification ({corpus})",
        "",
        f"Speaker-embedding model ({encoder}) for speaker verification, trained with the `{system}` system "
        f"of the speechbrain-ext-sv recipes on SpeechBrain "
        f"{speechbrain.__version__} and exported in SpeechBrain's layout: it loads with "
        "`SpeakerRecognition.from_hparams` / `EncoderClassifier.from_hparams`"
        + (" with the `speechbrain_ext` package installed (see Requirements)." if needs_package else "."),
        "",
    ]
    if corpus.lower() == "synthemo":
        lines += [
            "> **Trained on SynthEmo, a small synthetic corpus generated by the repository.** The numbers below "
            "measure this model on SynthEmo's evaluation trials only; they say nothing about real speech.",
            "",
        ]
    return lines


def _results(info, metrics, corpus):
    lines = ["## Results", "", f"Evaluation trials of {corpus} (speakers unseen in training), cosine scoring:", ""]
    lines += ["| condition | EER % | minDCF | EER threshold | #target | #nontarget |"]
    lines += ["|:---|---:|---:|---:|---:|---:|"]
    for c, m in metrics["conditions"].items():
        lines.append(
            f"| {c} | {100 * float(m['eer']):.2f} | {float(m.get('min_dcf', float('nan'))):.4f} | "
            f"{float(m.get('eer_threshold', float('nan'))):.4f} | {m.get('n_target', '-')} | "
            f"{m.get('n_nontarget', '-')} |"
        )
    p_target = next(iter(metrics["conditions"].values())).get("min_dcf_p_target", 0.01)
    lines += ["", f"minDCF: normalised detection cost at p_target = {p_target:g}.", ""]
    if info.get("metrics_checkpoint_mismatch"):
        lines += [f"> Note: {info['metrics_checkpoint_mismatch']}", ""]
    return lines


def _threshold(info, corpus):
    threshold = info["threshold"]
    return [
        "## Decision threshold",
        "",
        f"Accept (same speaker) when the cosine score is **>= {threshold:.4f}**. This is the "
        f"{info['threshold_source']}: the score at which false acceptances and false rejections are equally "
        f"frequent on those {corpus} trials. It is stored in `verification.json`, which "
        "`python -m speechbrain_ext.verify` reads. A different domain needs its own threshold. "
        "SpeechBrain's `verify_files` returns a decision at its fixed default of 0.25; compare the score with "
        "this threshold instead.",
        "",
    ] + ([f"The model also carries a calibration (`{CALIBRATION}`, below): `python -m speechbrain_ext.verify` "
          "decides on its log-likelihood ratio at a stated prior, and on this threshold only with `--threshold`.",
          ""] if _verify_calibrated(info) else [])


def _verify_calibrated(info):
    """Whether the export carries a calibration that ``verify`` applies."""
    cal = info.get("calibration") or {}
    return cal.get("calibration") is not None and not cal.get("problem")


def _usage(source, name, threshold, calibrated):
    verify = f"python -m speechbrain_ext.verify speaker_a.wav speaker_b.wav --model {source}"
    if calibrated:
        verify += f" --prior {DEFAULT_PRIOR:g}  # score, LLR and the decision at this prior"
    return [
        "## Usage",
        "",
        "```python",
        "from speechbrain.inference.speaker import SpeakerRecognition",
        "",
        "verification = SpeakerRecognition.from_hparams(",
        f'    source="{source}", savedir="pretrained_models/{name}"',
        ")",
        'score, _ = verification.verify_files("speaker_a.wav", "speaker_b.wav")',
        f"same_speaker = float(score) >= {threshold:.4f}  # threshold from verification.json",
        "",
        "# embeddings [batch, 1, D] of 16 kHz waveforms [batch, samples]",
        "from speechbrain.inference.speaker import EncoderClassifier",
        "",
        f'encoder = EncoderClassifier.from_hparams(source="{source}", savedir="pretrained_models/{name}")',
        "embeddings = encoder.encode_batch(wavs, wav_lens)",
        "```",
        "",
        "or, with this repository installed:",
        "",
        "```bash",
        verify,
        "```",
        "",
    ]


def _configuration(info, rows):
    lines = ["## Training configuration", "", "| | |", "|:---|:---|"]
    for key, value in rows:
        lines.append(f"| {key} | {str(value).replace('|', '/')} |")
    if info.get("command"):
        lines += ["", f"Command: `{info['command']}`"]
    return lines + [""]


def _padding(info):
    par = info["onnx"]
    if par["padding_invariant"]:
        gap = par["encode_batch_padded_diff"]
        speechbrain = (f"where SpeechBrain's `encode_batch` on the same padded batch differs by up to {gap:.2g}"
                       if gap > PARITY_TOLERANCE else
                       f"as SpeechBrain's `encode_batch` does with this encoder (max |diff| {gap:.1e})")
        return ("Each utterance of a padded batch gets the embedding it gets alone: the graph masks the padding "
                f"(`speechbrain_ext.batching.PaddingInvariantEmbedder`, the evaluation's extraction), {speechbrain}.")
    return (f"Not padding-invariant: `speechbrain_ext.batching` cannot mask this {info['encoder']} pipeline, so a "
            "shorter utterance of a padded batch gets another embedding than alone (as with SpeechBrain's "
            "`encode_batch`); embed one utterance per call, or batches of equal length.")


def _onnx(info):
    if not info.get("onnx"):
        return []
    par = info["onnx"]
    return [
        "## ONNX and TorchScript",
        "",
        f"`{ONNX_FILE}` (opset 17) and `{TORCHSCRIPT_FILE}` compute waveform → embedding in one graph "
        f"(Fbank, mean normalisation, {info['encoder']}): inputs `wavs` float32 `[batch, samples]` at "
        f"{info['sample_rate']} Hz, zero-padded, and `wav_lens` float32 `[batch]` (relative lengths, 1.0 for the "
        "longest); output `embeddings` `[batch, D]`. Batch and length are dynamic. The ONNX graph computes the "
        "STFT as a convolution with a DFT kernel (ONNX has no complex type). Neither file needs SpeechBrain or "
        "speechbrain_ext: ONNX Runtime, or PyTorch alone.",
        "",
        _padding(info),
        "",
        f"Parity with the PyTorch modules at export (`{par['reference']}`; utterances of "
        f"{', '.join(f'{s:g}' for s in par['seconds'])} s, padded batch and one by one): ONNX max |diff| "
        f"{par['onnx']['max_abs_diff']:.2e}, TorchScript {par['torchscript']['max_abs_diff']:.2e} (tolerance "
        f"{PARITY_TOLERANCE:g}; embedding values up to {par['embedding_scale']:.2f}).",
        "",
        "```python",
        "import numpy as np, onnxruntime as ort",
        f'session = ort.InferenceSession("{ONNX_FILE}")',
        'emb = session.run(None, {"wavs": wavs.astype(np.float32), "wav_lens": np.ones(len(wavs), np.float32)})[0]',
        "```",
        "",
    ]


def _requirements(info):
    if not info.get("non_speechbrain_classes"):
        return []
    return [
        "## Requirements",
        "",
        "The model blocks use classes outside SpeechBrain: "
        + ", ".join(f"`{c}`" for c in info["non_speechbrain_classes"])
        + f". `{HPARAMS}` names them, so `from_hparams` needs the `speechbrain_ext` package: install the "
        "speechbrain-ext-sv repository (`pip install -e .` in a clone) before loading"
        + (" (the ONNX and TorchScript files do not need it)." if info.get("onnx") else "."),
        "",
    ]


def _files(files):
    lines = ["## Files", "", "| file | bytes |", "|:---|---:|"]
    lines += [f"| `{n}` | {s} |" for n, s in sorted(files.items())]
    return lines + [f"| `{CARD}` | (this card) |", ""]


def model_card(info, hp, metrics, meta, n_params, files, repo_id):
    """The text of the export's ``README.md``.

    Arguments
    ---------
    info : dict
        ``system``, ``corpus``, ``encoder``, ``threshold``, ``threshold_condition``, ``command``,
        ``metrics_checkpoint_mismatch``, ``non_speechbrain_classes``, ``sample_rate``,
        ``embedding_dim``, ``onnx`` (the parity report or None), ``calibration``
        (``{"calibration", "problem", "fit", "reason"}``, :mod:`~speechbrain_ext.publish.calibration`).
    hp : dict
        The experiment's hyperparameters (round-trip mapping).
    metrics : dict
        The run's ``metrics.json``.
    meta : dict
        The exported checkpoint's ``CKPT.yaml``.
    n_params : int
        Parameters of the embedding model.
    files : dict
        ``{file name: bytes}`` of the folder (the card excepted).
    repo_id : str or None
        The Hub repo the usage snippets load from (default: a placeholder folder).

    Example
    -------
    >>> import ruamel.yaml
    >>> hp = ruamel.yaml.YAML().load("system: demo\\nembedding_model: !new:speechbrain_ext.encoders.CAMPPlus\\n")
    >>> info = {"system": "demo", "corpus": "SynthEmo", "encoder": "CAM++", "threshold": 0.5,
    ...         "threshold_condition": "all", "threshold_source": "EER threshold of the validation trials",
    ...         "calibration": {"reason": "the run wrote none"}}
    >>> card = model_card(info, hp, {"conditions": {"all": {"eer": 0.1}}}, {}, 1000, {}, "me/sv")
    >>> card.splitlines()[0], "same_speaker = float(score) >= 0.5000" in card
    ('---', True)
    >>> "Uncalibrated: the run wrote none" in card
    True
    """
    corpus, system, encoder = info["corpus"], info["system"], info["encoder"]
    name = repo_id.split("/")[-1] if repo_id else f"{system}-{corpus}".lower()
    source = repo_id or "path/to/this/folder"
    cal = info.get("calibration") or {}
    lines = ["---", _front_matter(corpus, metrics, name, encoder).strip(), "---", ""]
    lines += _intro(name, corpus, system, encoder, bool(info.get("non_speechbrain_classes")))
    lines += _results(info, metrics, corpus) + _threshold(info, corpus)
    lines += calibration_card(cal.get("calibration"), cal.get("problem"), cal.get("fit"), metrics, cal.get("reason"))
    lines += _usage(source, name, info["threshold"], _verify_calibrated(info))
    lines += _configuration(info, config_rows(hp, meta, n_params, corpus, info.get("embedding_dim")))
    lines += _onnx(info) + _requirements(info) + _files(files) + _CLOSING
    return "\n".join(lines)
