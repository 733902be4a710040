"""Fabricated suites for the suite runner and report tests: fake system files, a fake recipe, a suite file."""

import os

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_RECIPE = os.path.join(HERE, "fake_recipe.py")

#: name -> score separation of its fake runs (higher is better) and validation EERs per epoch
SYSTEMS = {
    "base": {"quality": 2.0, "valid_eers": [30.0, 20.0, 25.0], "evaluated_epoch": 2},
    "good": {"quality": 4.0, "valid_eers": [25.0, 15.0, 15.0], "evaluated_epoch": 3},
    "same": {"quality": 2.0, "valid_eers": [30.0, 22.0, 21.0], "evaluated_epoch": 3},
}


def write_system(folder, name, **values):
    """A fake system file with the keys the runner and the fake recipe need."""
    spec = {"system": name, "seed": 0, "output_root": "unused", "output_folder": "unused", "crash_once": 0,
            "sleep": 0.0, **SYSTEMS.get(name, SYSTEMS["base"]), **values}
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
        f.write("prepare_data: !name:os.makedirs\n  name: !ref <output_root>/prepared\n  exist_ok: True\n")
    return path


def make_suite(tmp_path, rows=("base", "good"), seeds=(1, 2), name="suite", continues=None, **top):
    """Write system files and a suite file in ``tmp_path``; returns the suite file's path.

    ``continues``: ``{row: row it continues}`` (those rows' system files get an ``init_from`` key).
    """
    continues = continues or {}
    systems = tmp_path / "systems"
    systems.mkdir(exist_ok=True)
    for row in rows:
        write_system(str(systems), row, **({"init_from": None} if row in continues else {}))
    spec = {
        "title": "A fabricated suite", "recipe": FAKE_RECIPE, "runs": str(tmp_path / "runs"),
        "report": str(tmp_path / "report.md"), "seeds": list(seeds), "jobs": 2, "threads": 1,
        "reference": rows[0], "rows": [{"hparams": f"systems/{r}.yaml", "label": f"system {r}",
                  **({"continues": continues[r]} if r in continues else {})} for r in rows],
        "splits": ["eval", "ood"], "conditions": ["all", "neutral_emotional"], "bootstrap": {"draws": 200},
        "prepare": False, **top,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)
