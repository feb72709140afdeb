"""``nnunet-polydice plot-shape``: the per-class loss L(D) and its slope dL/dD for a few settings."""

from __future__ import annotations

from nnunet_polydice.cli._types import checked
from nnunet_polydice.experiments import checks, shape
from nnunet_polydice.loss.settings import DEFAULT_EPSILON


def run(args) -> int:
    out = shape.image_path(args.out, "--out")                    # checked before any work
    settings = [shape.parse_setting(s) for s in args.settings]  # every setting checked before drawing
    rows = shape.shape_table(settings, args.at)
    print(shape.format_table(rows, args.at), end="")
    path = shape.plot_shape(settings, out)
    print(f"Wrote {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "plot-shape",
        help="plot the per-class loss L(D) and dL/dD against the Dice for K/epsilon settings or trainer names",
        description=(
            "Plot L(D) and dL/dD for D in [0, 1] (two panels) with the package's own poly_series, and print L and "
            "dL/dD at a few Dice values. A setting is K=<K>,eps=<epsilon> (K a positive integer or inf; without eps "
            f"the package default epsilon {DEFAULT_EPSILON:g}) or a "
            "trainer name (Poly Dice / Poly Tversky / Tversky / focal Tversky; for the ...CE families only the "
            "Dice-type term is drawn). Default settings: " + " ".join(shape.DEFAULT_SETTINGS) + "."))
    p.add_argument("--settings", nargs="+", default=list(shape.DEFAULT_SETTINGS), metavar="SETTING",
                   help="K=<K>,eps=<epsilon> or trainer names")
    p.add_argument("--out", default=shape.DEFAULT_FILE, metavar="FILE",
                   help="image file to write: a new one, or one plot-shape wrote before (listed in "
                        f"{shape.MANIFEST} beside it); any other file is never overwritten. Its extension sets the "
                        f"format (.png, .pdf, .svg, ...); a folder gets {shape.DEFAULT_FILE} inside it (default: "
                        f"{shape.DEFAULT_FILE} in the current folder)")
    p.add_argument("--at", nargs="+", type=checked(checks.check_number, "--at"), default=list(shape.DEFAULT_POINTS),
                   metavar="D",
                   help="Dice values of the printed table (default: 0.1 0.5 0.9)")
    p.set_defaults(func=run)
