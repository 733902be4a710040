"""Command line of the publishing steps: ``export`` a trained experiment, ``push`` it to the Hub.

::

    python -m speechbrain_ext.publish export <experiment_dir> <out_dir> [--onnx] [--checkpoint NAME]
                                             [--overwrite] [--repo-id USER/NAME] [--metrics PATH]
                                             [--calibration PATH]
    python -m speechbrain_ext.publish push <out_dir> --repo-id USER/NAME [--private] [--revision REV]
                                           [--dry-run] [--overwrite] [--commit-message TEXT]

Exit status 0, or 2 on a :class:`~speechbrain_ext.publish.layout.PublishError`, whose
one-line message (on stderr) names the file, key or folder.
"""

import argparse
import sys

from speechbrain_ext.publish.folder import export_model
from speechbrain_ext.publish.layout import COMMAND, PARITY_TOLERANCE, PublishError
from speechbrain_ext.publish.push import push_model

__all__ = ["main"]


def _parser():
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Export a trained experiment as a SpeechBrain speaker model and push it to the Hugging Face Hub.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write a SpeechBrain model folder from an experiment folder")
    exp.add_argument("experiment_dir")
    exp.add_argument("out_dir")
    exp.add_argument("--onnx", action="store_true", help="also write embedding.onnx and embedding.torchscript.pt")
    exp.add_argument("--checkpoint", help="checkpoint folder name under save/ (default: lowest valid EER)")
    exp.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir that is not an export")
    exp.add_argument("--repo-id", help="Hub repo id shown in the card's usage snippet")
    exp.add_argument("--metrics", help="metrics.json of the run (default: found next to the experiment)")
    exp.add_argument("--calibration", help="calibration.json of the run (default: the one next to metrics.json; "
                                           "without one the model is exported uncalibrated)")
    push = sub.add_parser("push", help="upload an exported model folder to the Hugging Face Hub")
    push.add_argument("out_dir")
    push.add_argument("--repo-id", required=True, help="user/name or org/name")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision", help="branch to push to")
    push.add_argument("--dry-run", action="store_true", help="list files, sizes and the card; no network")
    push.add_argument("--overwrite", action="store_true", help="replace other content in an existing repo")
    push.add_argument("--commit-message")
    return parser


def _export(args):
    result = export_model(args.experiment_dir, args.out_dir, checkpoint=args.checkpoint, onnx=args.onnx,
                          overwrite=args.overwrite, repo_id=args.repo_id, metrics_path=args.metrics,
                          calibration_path=args.calibration)
    print(f"exported {result['checkpoint']} (epoch {result['epoch']}, valid EER {result['valid_EER']} %) "
          f"to {result['out_dir']}")
    for name, size in result["files"].items():
        print(f"  {name:<28} {size:>12,d} B")
    print(f"threshold {result['threshold']:.4f} (EER threshold of {result['threshold_condition']!r})")
    print(f"calibration: {'copied from ' + result['calibration'] if result['calibration'] else 'none (uncalibrated)'}")
    print(f"reload check: max |diff| {result['reload_max_abs_diff']:.1e}")
    if result["onnx"]:
        par = result["onnx"]
        print(f"parity with {par['reference']}: onnx {par['onnx']['max_abs_diff']:.1e}, torchscript "
              f"{par['torchscript']['max_abs_diff']:.1e} (tolerance {PARITY_TOLERANCE:g}); "
              + ("padding-invariant" if par["padding_invariant"] else "NOT padding-invariant"))
    for warning in result["warnings"]:
        print(f"warning: {warning}")


def _push(args):
    result = push_model(args.out_dir, args.repo_id, private=args.private, revision=args.revision,
                        dry_run=args.dry_run, overwrite=args.overwrite, commit_message=args.commit_message)
    if not args.dry_run:
        verb = "created and uploaded" if result["created"] else "uploaded"
        print(f"{verb} {len(result['files'])} files to {result['repo_id']}: {result['url']}")
        if result["deleted"]:
            print(f"deleted from the repo: {', '.join(result['deleted'])}")


def main(argv=None):
    """Command line entry point; returns the exit status (0, or 2 on a :class:`PublishError`).

    Example
    -------
    >>> main(["export", "/nonexistent/exp", "/tmp/never"])  # the message goes to stderr
    2
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            _export(args)
        else:
            _push(args)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
