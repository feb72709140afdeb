"""The shape of the per-class loss: ``L(D)`` and ``dL/dD`` against the Dice ``D`` in ``[0, 1]``.

The library side of ``nnunet-polydice plot-shape``; no argparse, no printing. The values come from the
project's own math, :func:`nnunet_polydice.loss.functional.poly_series` of ``u = 1 - D`` (and
:func:`~nnunet_polydice.loss.functional.focal_power` for the focal-Tversky baseline), in float64, with the
derivative taken by ``torch.autograd``::

    L(D) = sum_{j=1..K} (1/j) u^j + epsilon u,   u = 1 - D        dL/dD = -(1 + epsilon + u + ... + u^(K-1))
    L(D) = -log(D) + epsilon u                    (K = inf)          dL/dD = -(1/D + epsilon)

Hand values at ``D = 0.5``: K=1, eps=0: L = 0.5, dL/dD = -1; K=inf, eps=0: L = ln 2, dL/dD = -2;
K=2, eps=1: L = 0.5 + 0.125 + 0.5 = 1.125, dL/dD = -2.5.

A setting is written ``K=<K>,eps=<epsilon>`` (``epsilon=`` also accepted; without it epsilon is the
package default :data:`~nnunet_polydice.loss.settings.DEFAULT_EPSILON`, as in the trainers; each key at most once) or is
a trainer name of the Poly families (the curve of its Dice or Tversky term: for the compound ``...CE``
families the CE term is not drawn, it is not a function of the Dice), ``nnUNetTrainerTversky*`` (the
curve ``1 - T``) or ``nnUNetTrainerFocalTversky*`` (``(1 - T)^gamma``). For the Tversky types the
horizontal axis is the Tversky index T instead of D.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_polydice.experiments import checks, outputs
from nnunet_polydice.experiments.paths import check_path_length, ensure_new_file, ensure_writable_dir
from nnunet_polydice.integration.naming import format_k, parse_trainer_name
from nnunet_polydice.loss.settings import DEFAULT_EPSILON, validate_poly

__all__ = [
    "DEFAULT_SETTINGS",
    "DEFAULT_POINTS",
    "ShapeSetting",
    "parse_setting",
    "loss_and_slope",
    "shape_table",
    "format_table",
    "DEFAULT_FILE",
    "image_formats",
    "image_path",
    "plot_shape",
]

#: The settings drawn when none are given: soft Dice (K=1), the truncations K=2 and K=3, log-Dice
#: (K=inf), the Poly-1 perturbation of the soft Dice (K=1, eps=1) and the package default (K=2, eps=1).
DEFAULT_SETTINGS = ("K=1,eps=0", "K=2,eps=0", "K=3,eps=0", "K=inf,eps=0", "K=1,eps=1", "K=2,eps=1")
#: Dice values of the printed table.
DEFAULT_POINTS = (0.1, 0.5, 0.9)
#: The curves start here: at D = 0 the K = inf loss is infinite.
D_MIN = 0.005
#: The file written when the output is a folder (or not given).
DEFAULT_FILE = "polydice_shape.png"
#: The tool's name in the manifest of its files (``.polydice_plot_shape.json`` beside the pictures it wrote).
TOOL = "plot_shape"
MANIFEST = outputs.manifest_name(TOOL)


@dataclass(frozen=True)
class ShapeSetting:
    """One curve: ``kind`` 'poly' (K, epsilon) or 'focal' (gamma), over the index named ``index``."""

    label: str
    kind: str = "poly"
    K: float | int = 1
    epsilon: float = 0.0
    gamma: float | None = None
    index: str = "D"  # 'D' (Dice) or 'T' (Tversky index)


#: The largest |epsilon| a plot shows: beyond it the curves are epsilon times a straight line, and near float's
#: range matplotlib cannot place the ticks of the axis (1e308 stopped it with "arange: cannot compute length").
MAX_PLOT_EPSILON = 1000.0


def _plottable(setting: ShapeSetting, text: str) -> ShapeSetting:
    if abs(setting.epsilon or 0.0) > MAX_PLOT_EPSILON:
        raise ValueError(f"setting {text!r}: plot-shape draws epsilon from -1 to {MAX_PLOT_EPSILON:g} (got "
                         f"{setting.epsilon:g}); a larger epsilon only scales the straight line epsilon * (1 - D).")
    return setting


def parse_setting(text: str) -> ShapeSetting:
    """``'K=2,eps=1'`` or a trainer name -> :class:`ShapeSetting`.

    Without ``eps`` the package default epsilon (:data:`DEFAULT_EPSILON`) is used, as a trainer name
    without parameters does.

    Raises:
        ValueError: for an unknown or repeated key, a bad K or epsilon (the sentence of :func:`validate_poly`),
            an epsilon above :data:`MAX_PLOT_EPSILON`, or a trainer whose loss is not a function of the Dice or
            Tversky index alone.
    """
    text = str(text).strip()
    if "=" in text:
        values = {}
        for part in filter(None, (p.strip() for p in re.split(r"[,;]", text))):
            key, sep, value = (s.strip() for s in part.partition("="))
            key = {"k": "K", "eps": "epsilon", "epsilon": "epsilon"}.get(key.lower())
            if not sep or key is None or not value:
                raise ValueError(f"setting {text!r}: write K=<K>,eps=<epsilon>, e.g. K=2,eps=1 or K=inf,eps=0 "
                                 f"(or give a trainer name).")
            if key in values:
                raise ValueError(f"setting {text!r} gives {key} twice ({values[key]} and {value}); give each of K "
                                 f"and eps at most once, e.g. K=2,eps=1.")
            values[key] = value
        if "K" not in values:
            raise ValueError(f"setting {text!r} has no K; write K=<K>,eps=<epsilon>, e.g. K=2,eps=1.")
        try:
            eps = checks.check_number(values.get("epsilon", DEFAULT_EPSILON), "epsilon")
        except ValueError:
            raise ValueError(f"setting {text!r}: epsilon must be a number (got {values['epsilon']!r}).") from None
        K, eps, _ = validate_poly(values["K"], eps)
        return _plottable(ShapeSetting(f"K={format_k(K)}, eps={eps:g}", "poly", K, eps), text)
    spec = parse_trainer_name(text)
    if spec is None or spec.family is None:
        raise ValueError(f"{text!r} is neither a setting K=<K>,eps=<epsilon> nor a trainer of nnunet-polydice; the "
                         f"loss of nnU-Net's own trainers is not a function of the Dice alone.")
    kind = spec.family.loss
    K, epsilon, gamma = kind.shape(spec.loss_kwargs())
    return _plottable(ShapeSetting(text, "poly" if gamma is None else "focal", K, epsilon, gamma, kind.index), text)


def _as_setting(s) -> ShapeSetting:
    return s if isinstance(s, ShapeSetting) else parse_setting(s)


def loss_and_slope(setting, index_values):
    """``(L, dL/dD)`` as float64 tensors at the given index values (D, or T for Tversky types)."""
    import torch

    from nnunet_polydice.loss.functional import focal_power, poly_series

    setting = _as_setting(setting)
    D = torch.as_tensor(index_values, dtype=torch.float64).detach().clone().requires_grad_(True)
    u = 1.0 - D
    if setting.kind == "focal":
        L = focal_power(u, setting.gamma)
    else:
        L = poly_series(u, setting.K, setting.epsilon)
    (grad,) = torch.autograd.grad(L.sum(), D)
    return L.detach(), grad.detach()


def shape_table(settings: Sequence = DEFAULT_SETTINGS, points: Sequence[float] = DEFAULT_POINTS) -> list[dict]:
    """One dict per setting: ``{'setting': label, 'index': 'D'|'T', 'L': [...], 'dL': [...]}`` at ``points``."""
    for p in points:
        if not (0.0 < float(p) <= 1.0):
            raise ValueError(f"table points must lie in (0, 1] (got {p!r}).")
    rows = []
    for s in map(_as_setting, settings):
        L, dL = loss_and_slope(s, [float(p) for p in points])
        rows.append({"setting": s.label, "index": s.index, "L": L.tolist(), "dL": dL.tolist()})
    return rows


def format_table(rows: list[dict], points: Sequence[float] = DEFAULT_POINTS) -> str:
    """A plain-text table of :func:`shape_table` (values with 6 significant digits)."""
    header = ["setting", *[f"L({p:g})" for p in points], *[f"dL/dD({p:g})" for p in points]]
    body = [[r["setting"], *[f"{v:.6g}" for v in r["L"]], *[f"{v:.6g}" for v in r["dL"]]] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(b, widths))) for b in body]
    if any(r["index"] == "T" for r in rows):
        lines.append("(Tversky-type settings: the index is the Tversky index T instead of D.)")
    return "\n".join(lines) + "\n"


def image_formats() -> dict:
    """The image formats matplotlib can write here: ``{extension: description}``."""
    from matplotlib.figure import Figure

    return Figure().canvas.get_supported_filetypes()


def image_path(path=DEFAULT_FILE, option: str = "--out") -> Path:
    """The file the plot goes to, checked before any work: a folder gets :data:`DEFAULT_FILE` inside it.

    A file this command wrote before (listed in the folder's :data:`MANIFEST`, as ``compare`` and ``curves`` list
    theirs) may be replaced, so that running it twice works; any other existing file is refused.

    Raises:
        ValueError: when the name has no extension or one matplotlib cannot write (the sentence lists the
            ones it can), or when its folder does not exist or cannot be written.
        FileExistsError: when the file exists and was not written by plot-shape (it is never overwritten).
    """
    path = check_path_length(path, option)
    if path.is_dir():
        path = path / DEFAULT_FILE
    formats = image_formats()
    extension = path.suffix[1:].lower()
    if extension not in formats:
        got = f"the extension .{extension}" if extension else "no extension"
        raise ValueError(f"{option} {path} has {got}; matplotlib writes {', '.join('.' + e for e in sorted(formats))}"
                         f" (or give a folder, which gets {DEFAULT_FILE}).")
    if path.is_file() and not path.is_symlink() and path.name in outputs.OwnedFolder(path.parent, TOOL).owned():
        ensure_writable_dir(path.parent, option)
        return path
    return ensure_new_file(path, option)


def plot_shape(settings: Sequence = DEFAULT_SETTINGS, path=DEFAULT_FILE, *, samples: int = 400) -> Path:
    """Draw L and dL/dD against the index in ``[D_MIN, 1]`` for each setting (two panels) and save the image.

    The vertical ranges are fitted to the curves on ``[0.1, 1]``; steeper parts near 0 (log-Dice) run
    off the panel. ``path`` is checked by :func:`image_path` (a folder gets :data:`DEFAULT_FILE`; the
    format follows the extension) and an existing file is never replaced unless plot-shape wrote it (it is then
    listed in the folder's :data:`MANIFEST`, which lists the file written too). Returns the file written.
    """
    path = image_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    settings = [_as_setting(s) for s in settings]
    if not settings:
        raise ValueError("no settings to plot; give e.g. K=1,eps=0 K=inf,eps=0.")
    D = torch.linspace(D_MIN, 1.0, samples, dtype=torch.float64)
    fig, (ax_l, ax_d) = plt.subplots(1, 2, figsize=(11, 4.5))
    lo = {"L": [], "dL": []}
    for s in settings:
        L, dL = loss_and_slope(s, D)
        ax_l.plot(D.numpy(), L.numpy(), label=s.label)
        ax_d.plot(D.numpy(), dL.numpy(), label=s.label)
        view = D >= 0.1
        lo["L"].append((float(L[view].min()), float(L[view].max())))
        lo["dL"].append((float(dL[view].min()), float(dL[view].max())))
    for ax, key, title in ((ax_l, "L", "per-class loss L"), (ax_d, "dL", "slope dL/dD")):
        ymin = min(a for a, _ in lo[key])
        ymax = max(b for _, b in lo[key])
        pad = 0.05 * (ymax - ymin or 1.0)
        ax.set_ylim(ymin - pad, ymax + pad)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("Dice D (Tversky index T for Tversky types)" if any(s.index == "T" for s in settings)
                      else "Dice D")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_d.axhline(0.0, color="black", lw=0.5)
    ax_l.legend(fontsize=8)
    fig.suptitle("Poly Dice: L = sum_{j<=K} (1-D)^j / j + eps (1-D)   (K = inf: -log D + eps (1-D))", fontsize=10)
    fig.tight_layout()
    replace = path.is_file()  # image_path let it through: plot-shape wrote it before
    try:
        with open(path, "wb" if replace else "xb") as fh:   # "x": a file that appeared meanwhile is not overwritten
            fig.savefig(fh, format=path.suffix[1:].lower(), dpi=100)
    finally:
        plt.close(fig)
    outputs.OwnedFolder(path.parent, TOOL).add([path.name])
    return path

