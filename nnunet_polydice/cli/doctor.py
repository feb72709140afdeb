"""``nnunet-polydice doctor``: is everything in place for nnU-Net to find the trainers?"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import sys

from nnunet_polydice.integration import link as linking
from nnunet_polydice.integration import lookup
from nnunet_polydice.integration.locate import HOOK_OPT_OUT, hook_opted_out, hook_value_problem, trainers_folder
from nnunet_polydice.integration.naming import FAMILIES

MIN_NNUNET = (2, 5)
DEFAULT_CHECKS = (*FAMILIES, "nnUNetTrainerPolyDice_K3_eps0p5", "nnUNetTrainerPolyDiceCE_Kinf_epsm0p5",
                  "nnUNetTrainerPolyDice_2ep5it", "nnUNetTrainer_2ep5it")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


_version_tuple = linking.version_tuple


def nnunet_version_problem(version: str | None) -> str | None:
    """A sentence saying what is wrong with the installed nnunetv2, or None."""
    if version is None:
        return "nnunetv2 is not installed: pip install 'nnunetv2>=2.5'."
    if _version_tuple(version) < MIN_NNUNET:
        return (f"nnunetv2 {version} is too old: nnunet-polydice needs nnunetv2 >= 2.5 (2.5-2.7 through "
                f"'nnunet-polydice link', 2.8+ through nnUNet_extTrainer). Upgrade: pip install -U 'nnunetv2>=2.5'.")
    return None


def route_problems(version: str, hook: bool, opted_out: bool) -> list[str]:
    """Print which route hands nnU-Net the trainers (hook, link or none) and return what is wrong with it."""
    folder = str(trainers_folder())
    state = linking.link_state()
    if linking.needs_link(version):
        route = {"linked": f"link ({state.path})", "absent": "none"}.get(state.status, f"none ({state.path} is "
                                                                                       f"{state.status})")
        print(f"route         {route}: nnunetv2 {version} searches only its own trainer folder, so the start-up "
              f"hook's nnUNet_extTrainer is not read")
        if state.status == "absent":
            return ["nnU-Net will not find the trainers: nnunetv2 before 2.8 reads no nnUNet_extTrainer. Fix: "
                    "nnunet-polydice link (writes one module into nnU-Net's trainer folder; "
                    "'nnunet-polydice unlink' removes it; pip uninstall does not)."]
        if state.status != "linked":
            return [f"{state.path} is {state.status}: " + ("edited since 'nnunet-polydice link' wrote it; look at it, "
                    "delete it by hand, then run nnunet-polydice link." if state.status == "edited" else
                    "not written by nnunet-polydice; move it away, then run nnunet-polydice link.")]
        return []
    print(f"trainers      {folder}")
    print(f"start-up hook {'installed' if hook else 'not installed'}"
          f"{' (switched off by ' + HOOK_OPT_OUT + ')' if opted_out else ''}")
    ext = os.environ.get("nnUNet_extTrainer")
    print(f"nnUNet_extTrainer={ext!r}")
    problems = []
    in_ext = folder in (ext or "").split(os.pathsep)
    print(f"route         {'hook (nnUNet_extTrainer)' if in_ext else 'none'}"
          + (f"; a link is also there ({state.path}), not needed on {version}" if state.status == "linked" else ""))
    if not in_ext:
        problems.append(f"nnU-Net will not find the trainers: the folder is not in nnUNet_extTrainer. Fix: "
                        f"export nnUNet_extTrainer=\"{folder}\"" + (f"{os.pathsep}$nnUNet_extTrainer" if ext else "")
                        + ("" if hook else " (or reinstall the package with pip so its start-up hook is installed)"))
    if state.status == "linked":
        problems.append(f"a link from an older nnU-Net is still in {state.path}; nnunetv2 {version} does not need it: "
                        f"nnunet-polydice unlink")
    elif state.status in ("edited", "foreign"):  # inside nnU-Net's own folder: imported at every lookup, first
        what = ("edited since 'nnunet-polydice link' wrote it" if state.status == "edited"
                else "not written by nnunet-polydice")
        problems.append(f"{state.path} is {what}; nnunetv2 {version} does not need a link, and imports this file at "
                        f"every trainer lookup, before nnUNet_extTrainer: look at it and delete it by hand "
                        f"(nnunet-polydice unlink removes only an unedited link).")
    return problems


def resolve(name: str) -> tuple[bool, str]:
    """Look ``name`` up with nnU-Net's own function, as nnUNetv2_train does. (ok, where-or-why): a name nnU-Net
    does not find, or finds as something that is not a trainer class (``os``, ``nnUNetDataLoader``), is a
    sentence, never a traceback."""
    try:
        cls = lookup.find_trainer_class(name)
    except ValueError as err:  # TrainerNotFound, InvalidTrainerName
        return False, str(err)
    spec = getattr(cls, "polyloss_spec", None)
    what = spec.formula() if spec is not None else "nnU-Net's own trainer"
    return True, f"{cls.__module__} ({what})"


def run(args) -> int:
    problems = []
    print(f"python        {sys.version.split()[0]} ({sys.executable})")
    nn_version = _version("nnunetv2")
    print(f"nnunetv2      {nn_version or 'not installed'}")
    print(f"torch         {_version('torch') or 'not installed'}")
    print(f"nnunet-polydice {_version('nnunet-polydice') or 'not installed (running from a source checkout)'}")
    problem = nnunet_version_problem(nn_version)
    if problem:
        print(f"\nPROBLEM: {problem}")
        return 1
    problems.extend(filter(None, [hook_value_problem()]))  # NNUNET_POLYDICE_NO_HOOK=on: neither on nor off
    hook = importlib.util.find_spec("_nnunet_polydice_hook") is not None
    problems.extend(route_problems(nn_version, hook, hook_opted_out()))
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        print(f"{var:<20}{os.environ.get(var, '(not set: nnU-Net needs it to plan, train and predict)')}")
    print("\nLookup through nnU-Net's own by-name trainer lookup (what nnUNetv2_train calls):")
    for name in args.names or DEFAULT_CHECKS:
        ok, where = resolve(name)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {where}")
        if not ok:
            problems.append(f"{name} does not resolve: {where}")
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nAll good: nnUNetv2_train / nnUNetv2_predict / nnUNetv2_find_best_configuration find these trainers.")
    return 0


def register(sub) -> None:
    p = sub.add_parser("doctor", help="versions, where the trainers are, whether nnU-Net's lookup finds them")
    p.add_argument("names", nargs="*", help="trainer names to check (default: the families and a few examples)")
    p.set_defaults(func=run)
