"""Test harness: runs the real recipe (``speechbrain_ext.recipe.main``) with observation hooks.

    python tests/reliability/harness.py <hparams.yaml> [--key value ...]

Without the environment variables below this is exactly ``recipes/<Corpus>/train.py``.
The hooks only observe and pause; they never change what training computes. They
live here, in the test harness, not in product code.

``SX_MARKERS=<file>``
    Append one line per event: ``train <epoch> <step> <crc32 of the batch ids> <loss>``
    after every training step,
    ``valid <epoch> <batch>`` after every validation batch, ``saved <epoch> <step>
    <end_of_epoch> <name>`` after every checkpoint (``step`` read back from the
    checkpoint's ``brain.ckpt``), ``paused <event>`` when pausing.
``SX_PAUSE_AT=<event>``
    Stop (sleep until killed) right after the event ``train:<epoch>:<step>``,
    ``valid:<epoch>:<batch>`` or ``saved:<n>`` (the n-th checkpoint written), or in
    the middle of a checkpoint: ``saving:<n>:<file>`` writes half of ``<file>`` of the
    n-th checkpoint and stops there. The test then SIGKILLs the process.
"""

import io
import os
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

MARKERS = os.environ.get("SX_MARKERS")
PAUSE_AT = os.environ.get("SX_PAUSE_AT", "")


def mark(line):
    if MARKERS:
        with open(MARKERS, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def pause(event):
    mark(f"paused {event}")
    while True:  # until SIGKILL
        time.sleep(1)


def install_hooks():
    import torch
    import yaml

    from speechbrain_ext.brains import speaker
    from speechbrain_ext.checkpoints import SafeCheckpointer

    state = {"saves": 0, "saving": False}

    fit_batch = speaker.SpeakerBrain.fit_batch

    def fit_batch_hook(self, batch):
        loss = fit_batch(self, batch)
        event = f"train:{self.hparams.epoch_counter.current}:{self.step}"
        batch_crc = zlib.crc32(",".join(getattr(batch, "all_ids", [])).encode())
        mark(f"{event.replace(':', ' ')} {batch_crc:08x} {float(loss):.9g}")
        if event == PAUSE_AT:
            pause(event)
        return loss

    evaluate_batch = speaker.SpeakerBrain.evaluate_batch

    def evaluate_batch_hook(self, batch, stage):
        out = evaluate_batch(self, batch, stage)
        event = f"valid:{self.hparams.epoch_counter.current}:{self.step}"
        mark(event.replace(":", " "))
        if event == PAUSE_AT:
            pause(event)
        return out

    save_checkpoint = SafeCheckpointer.save_checkpoint

    def save_checkpoint_hook(self, *args, **kwargs):
        state["saves"] += 1
        state["saving"] = True
        try:
            ckpt = save_checkpoint(self, *args, **kwargs)
        finally:
            state["saving"] = False
        if ckpt is not None:
            with open(ckpt.path / "brain.ckpt") as f:
                step = yaml.safe_load(f)["step"]
            with open(ckpt.path / "counter.ckpt") as f:
                epoch = int(f.read().strip())
            mark(f"saved {epoch} {step} {int(ckpt.meta['end-of-epoch'])} {ckpt.path.name}")
            if PAUSE_AT == f"saved:{state['saves']}":
                pause(PAUSE_AT)
        return ckpt

    torch_save = torch.save

    def torch_save_hook(obj, f, *args, **kwargs):
        if state["saving"] and isinstance(f, str | os.PathLike) and PAUSE_AT.startswith("saving:"):
            _, n, name = PAUSE_AT.split(":", 2)
            if state["saves"] == int(n) and os.path.basename(f) == name:
                buffer = io.BytesIO()
                torch_save(obj, buffer, *args, **kwargs)
                data = buffer.getvalue()
                with open(f, "wb") as out:
                    out.write(data[: len(data) // 2])
                    out.flush()
                    os.fsync(out.fileno())
                mark(f"partial {f} {len(data) // 2} of {len(data)}")
                pause(PAUSE_AT)
        return torch_save(obj, f, *args, **kwargs)

    speaker.SpeakerBrain.fit_batch = fit_batch_hook
    speaker.SpeakerBrain.evaluate_batch = evaluate_batch_hook
    SafeCheckpointer.save_checkpoint = save_checkpoint_hook
    torch.save = torch_save_hook


if __name__ == "__main__":
    if MARKERS or PAUSE_AT:
        install_hooks()
    from speechbrain_ext.recipe import main

    main(sys.argv[1:])
