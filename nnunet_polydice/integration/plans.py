"""A smaller U-Net configuration for CPU budgets, added beside nnU-Net's own in a plans file.

nnU-Net's plans support configurations that inherit from another one (``"inherits_from"``): the new
configuration keeps the base's preprocessing (same ``data_identifier``, so nothing is preprocessed
again) and replaces only the network size and the batch size. nnU-Net merges a child configuration
into its parent key by key (a shallow update), so the whole ``architecture`` entry is written.

Used by the demo and the ablation on the embedded data; an nnU-Net user can add such a
configuration to their own plans with ``nnunet-polydice add-config`` (it never changes the
configurations that are already there).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

CPU_CONFIGURATION = "2d_cpu"


def smaller_configuration(plans: dict, base: str = "2d", n_stages: int = 5, base_features: int = 16,
                          max_features: int = 256, batch_size: int | None = 8,
                          max_patch: int | None = None) -> dict:
    """The configuration entry that inherits ``base`` with a U-Net of ``n_stages`` stages whose
    features double from ``base_features`` up to ``max_features``; ``batch_size`` None keeps the base's;
    ``max_patch`` caps each axis of the patch size (rounded down to a multiple of the pooling).
    """
    configs = plans["configurations"]
    if base not in configs:
        raise ValueError(f"base configuration {base!r} is not in the plans (have: {', '.join(configs)}).")
    if "architecture" not in configs[base]:
        raise ValueError(f"base configuration {base!r} has no 'architecture' of its own; choose a base that "
                         f"is not itself inherited.")
    arch = copy.deepcopy(configs[base]["architecture"])
    kw = arch["arch_kwargs"]
    have = kw["n_stages"]
    if not 2 <= n_stages <= have:
        raise ValueError(f"n_stages must be between 2 and the base's {have} (got {n_stages}).")
    if base_features < 1 or max_features < base_features:
        raise ValueError(f"need 1 <= base_features <= max_features (got {base_features}, {max_features}).")
    kw["n_stages"] = n_stages
    kw["features_per_stage"] = [min(base_features * 2 ** i, max_features) for i in range(n_stages)]
    for key in ("kernel_sizes", "strides", "n_conv_per_stage"):
        kw[key] = kw[key][:n_stages]
    kw["n_conv_per_stage_decoder"] = kw["n_conv_per_stage_decoder"][:n_stages - 1]
    divisor = [1] * len(kw["strides"][0])
    for stride in kw["strides"]:
        divisor = [d * s for d, s in zip(divisor, stride)]
    patch = configs[base]["patch_size"]
    if any(p % d for p, d in zip(patch, divisor)):
        raise ValueError(f"patch size {patch} of {base!r} is not divisible by the pooling {divisor} of "
                         f"{n_stages} stages.")
    config = {"inherits_from": base, "architecture": arch}
    if max_patch is not None:
        capped = [min(p, max(d, max_patch // d * d)) for p, d in zip(patch, divisor)]
        if capped != list(patch):
            config["patch_size"] = capped
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (got {batch_size}).")
        config["batch_size"] = batch_size
    return config


def add_configuration(plans_file, name: str, config: dict) -> bool:
    """Add ``config`` as configuration ``name`` to ``plans_file``. Returns True if the file changed.

    An existing configuration of that name is left alone when it is identical (returns False) and
    refused when it differs (FileExistsError), so a user's configuration is never replaced.
    """
    path = Path(plans_file)
    plans = json.loads(path.read_text())
    existing = plans["configurations"].get(name)
    if existing == config:
        return False
    if existing is not None:
        raise FileExistsError(f"{path} already has a configuration {name!r} that differs from the one asked "
                              f"for; choose another name (nothing was changed).")
    plans["configurations"][name] = config
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plans, indent=4, sort_keys=False))
    tmp.replace(path)
    return True
