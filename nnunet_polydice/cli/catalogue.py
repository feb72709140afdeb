"""``nnunet-polydice list``: the trainer catalogue."""

from __future__ import annotations

import json

from nnunet_polydice.integration.naming import FAMILIES, catalogue_names, format_k, parse_trainer_name


def _row(name: str) -> dict:
    spec = parse_trainer_name(name)
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
