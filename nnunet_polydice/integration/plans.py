"""A smaller U-Net configuration for CPU budgets, added beside nnU-Net's own in a plans file.

nnU-Net's plans support configurations that inherit from another one (``"inherits_from"``): the new
configuration keeps the base's preprocessing (the same ``data_identifier``, which it does not repeat, so
nnU-Net trains it from the base's preprocessed folder without preprocessing again) and replaces only the
network size, the batch size and, optionally, the patch size. nnU-Net merges a child configuration into
its parent key by key (a shallow update, :func:`resolve_configuration`), so the whole ``architecture``
entry is written.

Used by the demo and the ablation on the embedded data; an nnU-Net user adds such a configuration to
their own plans with ``nnunet-polydice add-config`` (:func:`add_smaller_configuration`), which never
changes the configurations that are already there.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CPU_CONFIGURATION = "2d_cpu"

#: nnU-Net writes its plans with ``json.dump(plans, f, sort_keys=False, indent=4)``.
PLANS_INDENT = 4

# A configuration name becomes part of nnU-Net's result folder <trainer>__<plans>__<configuration>.
#: An added configuration's name: part of every results folder <trainer>__<plans>__<configuration>, a name that the
#: file system limits to 255 bytes, so it is kept short (nnU-Net's own are at most 19 characters).
MAX_CONFIGURATION_NAME = 48
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_CONFIGURATION_NAME - 1}}}", re.ASCII)

#: The configurations nnU-Net's own planners write and its commands know by name (the cascade trains
#: 3d_cascade_fullres on 3d_lowres predictions): a configuration added by hand never takes one of these names.
RESERVED_CONFIGURATIONS = ("2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres")


def resolve_configuration(plans: dict, name: str) -> dict:
    """The configuration ``name`` with its ``inherits_from`` chain merged the way nnU-Net's
    ``PlansManager`` does it: each child updates a copy of its parent key by key.

    Raises:
        ValueError: when ``name`` (or a parent) is not in the plans, or the chain is circular.
    """
    configs = plans["configurations"]
    chain = []
    while True:
        if name not in configs:
            raise ValueError(f"configuration {name!r} is not in the plans (have: {', '.join(configs)}).")
        if name in chain:
            raise ValueError(f"configurations {' -> '.join(chain + [name])} inherit from each other in a circle.")
        chain.append(name)
        if "inherits_from" not in configs[name]:
            break
        name = configs[name]["inherits_from"]
    merged: dict = {}
    for link in reversed(chain):
        merged.update(copy.deepcopy(configs[link]))
    return merged


def smaller_configuration(plans: dict, base: str = "2d", n_stages: int = 5, base_features: int = 16,
                          max_features: int = 256, batch_size: int | None = 8,
                          max_patch: int | None = None) -> dict:
    """The configuration entry that inherits ``base`` with a U-Net of ``n_stages`` stages whose
    features double from ``base_features`` up to ``max_features``; ``batch_size`` None keeps the base's;
    ``max_patch`` caps each axis of the patch size (rounded down to a multiple of the pooling; None keeps
    the base's; a cap below the pooling of an axis it would shrink is refused, since the smallest patch the
    network takes there, the pooling itself, would be larger than asked). ``base`` may itself inherit from another
    configuration (its merged values are used). The entry has no ``data_identifier``: it shares the base's
    preprocessed data.

    Raises:
        ValueError: for a base that is not in the plans or has no ``architecture`` entry, or a size out of range.
    """
    configs = plans["configurations"]
    if base not in configs:
        raise ValueError(f"base configuration {base!r} is not in the plans (have: {', '.join(configs)}).")
    resolved = resolve_configuration(plans, base)
    if "architecture" not in resolved:
        raise ValueError(f"base configuration {base!r} has no 'architecture' entry (plans of an nnU-Net older than "
                         f"2.4?); plan the data set again with nnUNetv2_plan_experiment.")
    arch = copy.deepcopy(resolved["architecture"])
    kw = arch["arch_kwargs"]
    have = kw["n_stages"]
    if not 2 <= n_stages <= have:
        raise ValueError(f"n_stages must be between 2 and the base's {have} (got {n_stages}).")
    if base_features < 1 or max_features < base_features:
        raise ValueError(f"need 1 <= base_features <= max_features (got {base_features}, {max_features}).")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (got {batch_size}).")
    if max_patch is not None and max_patch < 1:
        raise ValueError(f"max_patch must be a positive integer (got {max_patch}).")
    kw["n_stages"] = n_stages
    kw["features_per_stage"] = [min(base_features * 2 ** i, max_features) for i in range(n_stages)]
    for key in ("kernel_sizes", "strides", "n_conv_per_stage", "n_blocks_per_stage"):
        if key in kw:  # n_conv_per_stage: PlainConvUNet; n_blocks_per_stage: the residual encoder U-Nets
            kw[key] = kw[key][:n_stages]
    kw["n_conv_per_stage_decoder"] = kw["n_conv_per_stage_decoder"][:n_stages - 1]
    divisor = [1] * len(kw["strides"][0])
    for stride in kw["strides"]:
        divisor = [d * s for d, s in zip(divisor, stride)]
    patch = resolved["patch_size"]
    if any(p % d for p, d in zip(patch, divisor)):
        raise ValueError(f"patch size {patch} of {base!r} is not divisible by the pooling {divisor} of "
                         f"{n_stages} stages.")
    config = {"inherits_from": base, "architecture": arch}
    if max_patch is not None:
        short = [i for i, (p, d) in enumerate(zip(patch, divisor)) if max_patch < min(p, d)]
        if short:
            i = short[0]
            raise ValueError(f"a patch edge of at most {max_patch} cannot be met: a U-Net of {n_stages} stages pools "
                             f"axis {i} by {divisor[i]} (pooling {divisor}), so a patch axis is a multiple of that, "
                             f"at least {divisor[i]}; give an edge of {max(divisor[j] for j in short)} or more, or "
                             f"fewer stages.")
        capped = [min(p, max_patch // d * d) for p, d in zip(patch, divisor)]
        if capped != list(patch):
            config["patch_size"] = capped
    if batch_size is not None:
        config["batch_size"] = batch_size
    return config


def check_configuration_name(name: str) -> str:
    """``name`` if it can name an added nnU-Net configuration: 1 to :data:`MAX_CONFIGURATION_NAME` ASCII letters,
    digits, ``_``, ``-`` and ``.``, starting with a letter or digit, without ``__`` (nnU-Net's separator in result
    folder names), and none of nnU-Net's own names (:data:`RESERVED_CONFIGURATIONS`).

    Raises:
        ValueError: otherwise, with the rule.
    """
    if not _NAME.fullmatch(name) or "__" in name:
        shown = f"{name[:40]!r}... ({len(name)} characters)" if len(name) > MAX_CONFIGURATION_NAME else repr(name)
        raise ValueError(f"--name {shown} cannot name an nnU-Net configuration: use 1 to {MAX_CONFIGURATION_NAME} "
                         f"ASCII letters, digits, '_', '-' and '.', starting with a letter or digit, without '__' "
                         f"(e.g. 2d_cpu).")
    if name.lower() in RESERVED_CONFIGURATIONS:
        raise ValueError(f"--name {name!r} is one of nnU-Net's own configuration names "
                         f"({', '.join(RESERVED_CONFIGURATIONS)}), which its planners write and its commands expect "
                         f"to be theirs; give the smaller configuration a name of its own, e.g. {name.lower()}_cpu.")
    return name


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` through a temporary file in the same folder (one rename: a reader sees
    the old file or the new one, never half of it); the file's permission bits are kept."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_writable(path: Path) -> None:
    """Try (rather than guess from permission bits) what the atomic replacement of ``path`` needs: opening the
    file for writing (without changing it; a file made read-only is not replaced behind its owner's back) and
    creating a file beside it (removed at once).

    Raises:
        PermissionError: naming the file or folder and the reason; nothing was changed.
    """
    try:
        with open(path, "r+b"):
            pass
    except OSError as err:
        raise PermissionError(f"cannot write the plans file {path} ({err.strerror}); nothing was changed.") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise PermissionError(f"cannot create a file in {path.parent} ({err.strerror}), which replacing "
                              f"{path.name} atomically needs; nothing was changed.") from None


def _dump_like(plans: dict, original: str) -> str:
    """``plans`` as nnU-Net writes a plans file, with the trailing white space of ``original`` kept."""
    return json.dumps(plans, indent=PLANS_INDENT, sort_keys=False) + original[len(original.rstrip()):]


def add_configuration(plans_file, name: str, config: dict) -> bool:
    """Add ``config`` as configuration ``name`` to ``plans_file``. Returns True if the file changed.

    An existing configuration of that name is left alone when it is identical (returns False) and
    refused when it differs (FileExistsError), so a user's configuration is never replaced. The file is
    written atomically, in nnU-Net's layout (indent 4, key order kept, the new configuration last).
    """
    path = Path(plans_file)
    original = path.read_text(encoding="utf-8")
    plans = json.loads(original)
    existing = plans["configurations"].get(name)
    if existing == config:
        return False
    if existing is not None:
        raise FileExistsError(f"{path} already has a configuration {name!r} that differs from the one asked "
                              f"for; choose another name (nothing was changed).")
    plans["configurations"][name] = config
    _write_atomically(path.resolve(), _dump_like(plans, original))  # resolved: a symbolic link stays one
    return True


@dataclass
class AddedConfiguration:
    """What :func:`add_smaller_configuration` did."""

    plans_file: Path
    name: str
    base: str
    config: dict  # the entry written (or found identical)
    resolved: dict  # the configuration as nnU-Net sees it: the base's values updated by the entry
    base_resolved: dict  # the base as nnU-Net sees it
    changed: bool  # False: an identical entry was there already
    layout_kept: bool  # the rest of the file is byte for byte what it was (False: it was not in nnU-Net's layout)


def add_smaller_configuration(plans_file, name: str = CPU_CONFIGURATION, base: str = "2d", n_stages: int = 5,
                              base_features: int = 8, max_features: int = 128, batch_size: int | None = 8,
                              max_patch: int | None = 96) -> AddedConfiguration:
    """Add the smaller configuration ``name`` inheriting ``base`` (:func:`smaller_configuration`; the defaults
    are the demo's ``2d_cpu``) to a user's plans file, after checking everything first.

    Refused, with nothing written: a name nnU-Net cannot use, a plans file that is missing, not JSON or not
    writable, a base that is not in it, sizes out of range, and a configuration ``name`` that is there and
    differs (an identical one is left as it is: ``changed`` False). The file is replaced atomically; everything
    but the new entry keeps its content, and its bytes when the file is in nnU-Net's layout.

    Raises:
        ValueError, FileNotFoundError, FileExistsError, PermissionError: with a sentence naming the option.
    """
    check_configuration_name(name)
    path = Path(plans_file)
    if not path.is_file():
        raise FileNotFoundError(f"no plans file {path}; run nnUNetv2_plan_and_preprocess for the data set first "
                                f"(or give the plans identifier with -p).")
    _check_writable(path)
    original = path.read_text(encoding="utf-8")
    try:
        plans = json.loads(original)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); nothing was changed.") from None
    configs = plans.get("configurations") if isinstance(plans, dict) else None
    if not isinstance(configs, dict):
        raise ValueError(f"{path} has no 'configurations' entry; is it an nnU-Net plans file?")
    if base not in configs:
        raise ValueError(f"--base {base!r} is not a configuration of {path.name}; the available ones are: "
                         f"{', '.join(configs)}.")
    have = resolve_configuration(plans, base).get("architecture", {}).get("arch_kwargs", {}).get("n_stages")
    if have is not None and not 2 <= n_stages <= have:
        raise ValueError(f"--stages {n_stages} is out of range: the base configuration {base!r} has {have} stages; "
                         f"choose 2 to {have}.")
    config = smaller_configuration(plans, base=base, n_stages=n_stages, base_features=base_features,
                                   max_features=max_features, batch_size=batch_size, max_patch=max_patch)
    existing = configs.get(name)
    if existing is not None and existing != config:
        raise FileExistsError(f"{path.name} already has a configuration {name!r}, which add-config never replaces; "
                              f"choose another name with --name (nothing was changed).")
    layout_kept = _dump_like(plans, original) == original
    changed = add_configuration(path, name, config)
    configs[name] = config
    return AddedConfiguration(path, name, base, config, resolve_configuration(plans, name),
                              resolve_configuration(plans, base), changed, layout_kept)
