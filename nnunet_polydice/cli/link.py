"""``nnunet-polydice link`` / ``unlink``: the explicit, reversible route for nnU-Net before 2.8."""

from __future__ import annotations

from nnunet_polydice.integration import link as linking


def run_link(args) -> int:
    state, what = linking.link()
    if what == "unchanged":
        print(f"Already linked: {state.path} (sha256 {state.sha256}); nothing written.")
        return 0
    print(f"Wrote {state.path}\n  sha256 {state.sha256} (recorded on the file's second line)\n"
          f"nnU-Net {linking.nnunet_version()} now finds this package's trainers by name (nnUNetv2_train -tr, "
          f"nnUNetv2_predict -tr).\nUndo with 'nnunet-polydice unlink', which removes exactly this file. "
          f"'pip uninstall nnunet-polydice' cannot remove it: run 'nnunet-polydice unlink' before uninstalling.")
    return 0


def run_unlink(args) -> int:
    state, removed = linking.unlink()
    print("Removed " + ", ".join(str(p) for p in removed) + f" (sha256 {state.sha256}); nothing else was touched.")
    return 0


def register(sub) -> None:
    p = sub.add_parser("link", help="nnunetv2 2.5-2.7: write one module into nnU-Net's trainer folder so it finds "
                                    "these trainers (undo with unlink; not needed on 2.8+)")
    p.set_defaults(func=run_link)
    p = sub.add_parser("unlink", help="remove exactly the module 'link' wrote (refused if edited by hand)")
    p.set_defaults(func=run_unlink)
