"""``nnunet-polydice list``: the trainer catalogue."""

from __future__ import annotations

import json

from nnunet_polydice.integration import lookup
from nnunet_polydice.integration.naming import FAMILIES, catalogue_names, format_k, parse_trainer_name

#: What nnU-Net's own trainers in the README's catalogue train with.
NNUNET_LOSSES = {"nnUNetTrainer": "CE + soft Dice (nnU-Net's default)",
                 "nnUNetTrainerDiceLoss": "soft Dice (nnU-Net's)"}


def _nnunet_row(name: str, base: str, epochs, iterations) -> dict:
    """The row of one of nnU-Net's own trainers (with or without a schedule suffix).

    Raises:
        ValueError: when nnU-Net ships no trainer of that name; the sentence suggests the closest name.
    """
    known = lookup.nnunet_trainer_names()
    if base not in known:
        guess = lookup.closest_name(name, [*catalogue_names(), *known])
        hint = f" Did you mean {guess!r}?" if guess and guess != name else ""
        raise ValueError(f"{name!r} is neither a trainer of nnunet-polydice nor one nnU-Net ships.{hint} Without "
                         f"names, 'nnunet-polydice list' prints the catalogue; 'nnunet-polydice doctor NAME' looks up "
                         f"a trainer of your own.")
    schedule = "" if epochs is None else f", {epochs} epochs x {iterations} iterations"
    return {"name": name, "family": "(nnU-Net's)", "K": None, "epsilon": None, "alpha": None, "beta": None,
            "gamma": None, "formula": NNUNET_LOSSES.get(base, "nnU-Net's own loss") + schedule}


def _row(name: str) -> dict:
    spec = parse_trainer_name(name)  # a malformed name of our families: its sentence (InvalidTrainerName)
    if spec is None:
        return _nnunet_row(name, name, None, None)
    if spec.family is None:
        return _nnunet_row(name, spec.base, spec.epochs, spec.iterations)
    return {
        "name": spec.name,
        "family": spec.family_name,
        "K": None if spec.K is None else format_k(spec.K),
        "epsilon": spec.epsilon,
        "alpha": spec.alpha,
        "beta": spec.beta,
        "gamma": spec.gamma,
        "formula": spec.formula(),
    }


def catalogue_rows(names=None, family: str | None = None) -> list[dict]:
    rows = [_row(n) for n in (names or catalogue_names())]
    return [r for r in rows if family is None or r["family"] == family]


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def run(args) -> int:
    rows = catalogue_rows(args.names or None, args.family)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    cols = ("name", "family", "K", "epsilon", "alpha", "beta", "gamma", "formula")
    table = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    print(f"\n{len(rows)} trainers. Any other setting resolves by name, e.g. nnUNetTrainerPolyDice_K5_eps0p25; "
          f"add _<epochs>ep<iterations>it for a short schedule. See README, 'Trainer names'.")
    return 0


def register(sub) -> None:
    p = sub.add_parser("list", help="the trainer catalogue: name, family, K, epsilon, alpha/beta, formula")
    p.add_argument("names", nargs="*", help="trainer names to describe instead of the catalogue")
    p.add_argument("--family", choices=sorted(FAMILIES), help="only this family")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
