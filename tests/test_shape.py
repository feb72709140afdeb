"""``nnunet-polydice plot-shape`` (nnunet_polydice.experiments.shape): L(D) and dL/dD from the package's own math."""

import json
import math

import pytest

torch = pytest.importorskip("torch")

from nnunet_polydice.cli import main  # noqa: E402
from nnunet_polydice.experiments import shape  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("setting, D, L, slope", [
    ("K=1,eps=0", 0.5, 0.5, -1.0),                       # soft Dice 1 - D
    ("K=1,eps=0", 0.1, 0.9, -1.0),
    ("K=inf,eps=0", 0.5, math.log(2.0), -2.0),           # -log D
    ("K=inf,eps=0", 0.9, -math.log(0.9), -1 / 0.9),
    ("K=2,eps=1", 0.5, 0.5 + 0.125 + 0.5, -(1 + 1 + 0.5)),
    ("K=2,eps=1", 0.9, 0.1 + 0.005 + 0.1, -(1 + 1 + 0.1)),
    ("K=3,eps=0.5", 0.2, 0.8 + 0.32 + 0.512 / 3 + 0.4, -(1.5 + 0.8 + 0.64)),
    ("K=inf,eps=-0.5", 0.25, math.log(4.0) - 0.375, -(4.0 - 0.5)),
    ("nnUNetTrainerPolyDice_K2_eps1", 0.5, 1.125, -2.5),
    ("nnUNetTrainerPolyDiceCE_Kinf_eps0", 0.5, math.log(2.0), -2.0),
    ("nnUNetTrainerTversky", 0.25, 0.75, -1.0),                       # 1 - T
    ("nnUNetTrainerFocalTversky", 0.75, 0.25 ** 0.75, -0.75 * 0.25 ** -0.25),  # (1 - T)^0.75
])
def test_values_and_slopes_by_hand(setting, D, L, slope):
    value, grad = shape.loss_and_slope(setting, [D])
    assert value.item() == pytest.approx(L, rel=1e-12)
    assert grad.item() == pytest.approx(slope, rel=1e-12)


@pytest.mark.parametrize("text, K, eps", [
    ("K=1,eps=0", 1, 0.0), ("K=inf,eps=0", math.inf, 0.0), ("k=3, epsilon=-0.5", 3, -0.5), ("K=2", 2, 1.0),
    ("eps=1,K=2", 2, 1.0),
])
def test_setting_spellings(text, K, eps):
    s = shape.parse_setting(text)
    assert (s.kind, s.K, s.epsilon, s.index) == ("poly", K, eps, "D")


def test_tversky_names_use_the_tversky_index():
    s = shape.parse_setting("nnUNetTrainerPolyTversky_K2_eps1_a0p3_b0p7")
    assert (s.K, s.epsilon, s.index) == (2, 1.0, "T")
    assert shape.parse_setting("nnUNetTrainerFocalTverskyCE").gamma == 0.75


@pytest.mark.parametrize("text, message", [
    ("K=0,eps=0", r"K must be a positive integer or inf \(got '0'\)"),
    ("K=1,eps=-1", "identically zero"),
    ("K=2,eps=-3", "epsilon must be >= -1"),
    ("K=2,eps=x", "epsilon must be a number"),
    ("eps=1", "has no K"),
    ("K=2,gamma=1", "write K=<K>,eps=<epsilon>"),
    ("nnUNetTrainer", "not a function of the Dice alone"),
    ("nnUNetTrainerPolyDice_K02_eps1", "canonical name"),
    ("K=2,K=3", r"setting 'K=2,K=3' gives K twice \(2 and 3\); give each of K and eps at most once"),
    ("K=2,eps=1,epsilon=0", r"gives epsilon twice \(1 and 0\)"),
    ("eps=0,K=2,eps=0", r"gives epsilon twice"),
])
def test_bad_settings_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        shape.parse_setting(text)


def _table(out):
    """{setting: [L(0.1), L(0.5), L(0.9), dL(0.1), dL(0.5), dL(0.9)]} from the printed table."""
    rows = {}
    for line in out.splitlines()[1:]:
        parts = line.rsplit(None, 6)
        if len(parts) == 7:
            try:
                rows[parts[0].strip()] = [float(v) for v in parts[1:]]
            except ValueError:
                pass
    return rows


def test_cli_prints_hand_values_and_writes_the_png(tmp_path, capsys):
    out = tmp_path / "shape.png"
    assert main(["plot-shape", "--settings", "K=1,eps=0", "K=inf,eps=0", "K=2,eps=1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0].split()
    assert header == ["setting", "L(0.1)", "L(0.5)", "L(0.9)", "dL/dD(0.1)", "dL/dD(0.5)", "dL/dD(0.9)"]
    t = _table(printed)
    assert t["K=1, eps=0"] == pytest.approx([0.9, 0.5, 0.1, -1, -1, -1], abs=1e-6)
    assert t["K=inf, eps=0"] == pytest.approx([math.log(10), math.log(2), -math.log(0.9), -10, -2, -1 / 0.9],
                                              rel=1e-5)
    assert t["K=2, eps=1"] == pytest.approx([0.9 + 0.405 + 0.9, 1.125, 0.205, -2.9, -2.5, -2.1], rel=1e-6)
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    import matplotlib.image
    assert matplotlib.image.imread(str(out)).shape == (450, 1100, 4)  # two panels side by side, 11 x 4.5 in


def test_cli_default_settings_are_documented_and_drawn(tmp_path, capsys):
    out = tmp_path / "d.png"
    assert main(["plot-shape", "--out", str(out)]) == 0
    t = _table(capsys.readouterr().out)
    assert list(t) == ["K=1, eps=0", "K=2, eps=0", "K=3, eps=0", "K=inf, eps=0", "K=1, eps=1", "K=2, eps=1"]
    assert len(shape.DEFAULT_SETTINGS) == 6 and out.is_file()
    # the truncated sums rise with K towards -log D at every point
    for i in range(3):
        assert t["K=1, eps=0"][i] < t["K=2, eps=0"][i] < t["K=3, eps=0"][i] < t["K=inf, eps=0"][i]


def test_cli_bad_setting_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["plot-shape", "--settings", "K=2,eps=0", "K=0,eps=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-polydice plot-shape: error: K must be a positive integer") and not out.exists()


def test_setting_without_eps_takes_the_package_default_epsilon():
    # the trainers' default (settings.DEFAULT_EPSILON = 1), not 0: K=2 alone is the curve of K=2, eps=1
    from nnunet_polydice.loss.settings import DEFAULT_EPSILON

    s = shape.parse_setting("K=2")
    assert s.epsilon == DEFAULT_EPSILON == 1.0 and s.label == "K=2, eps=1"
    value, slope = shape.loss_and_slope(s, [0.5])
    assert (value.item(), slope.item()) == pytest.approx((1.125, -2.5))   # 0.5 + 0.125 + 0.5; -(1 + 1 + 0.5)


def test_cli_never_overwrites_an_existing_file(tmp_path, capsys):
    out = tmp_path / "mine.png"
    out.write_bytes(b"my own picture")
    assert main(["plot-shape", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"nnunet-polydice plot-shape: error: --out {out} exists; nnunet-polydice never "
                                    f"overwrites a file: remove it or give another name.")
    assert captured.out == "" and out.read_bytes() == b"my own picture"   # refused before any work


def test_cli_folder_gets_the_default_file_and_prints_its_path(tmp_path, capsys):
    assert main(["plot-shape", "--settings", "K=2", "--out", str(tmp_path)]) == 0
    written = tmp_path / shape.DEFAULT_FILE
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"Wrote {written}" and written.read_bytes()[:8] == PNG_MAGIC
    assert "K=2, eps=1" in out
    assert main(["plot-shape", "--out", str(tmp_path)]) == 0   # its own earlier file: replaced
    assert capsys.readouterr().out.splitlines()[-1] == f"Wrote {written}"
    assert "K=2, eps=1" not in (tmp_path / shape.MANIFEST).read_text()


@pytest.mark.parametrize("twice", [[], ["--settings", "K=3,eps=0"]])
def test_cli_run_twice_without_out_replaces_its_own_default_file(tmp_path, monkeypatch, capsys, twice):
    monkeypatch.chdir(tmp_path)
    assert main(["plot-shape", "--settings", "K=2"]) == 0
    first = (tmp_path / shape.DEFAULT_FILE).read_bytes()
    assert main(["plot-shape", *twice]) == 0
    assert (tmp_path / shape.DEFAULT_FILE).read_bytes() != first or not twice
    assert sorted(p.name for p in tmp_path.iterdir()) == [shape.MANIFEST, shape.DEFAULT_FILE]
    # a second picture of another name is recorded beside the first; neither is removed
    assert main(["plot-shape", "--out", "other.svg"]) == 0 and main(["plot-shape"]) == 0
    assert main(["plot-shape", "--out", "other.svg"]) == 0
    assert json.loads((tmp_path / shape.MANIFEST).read_text())["files"] == [shape.DEFAULT_FILE, "other.svg"]


@pytest.mark.parametrize("name", [shape.DEFAULT_FILE, "mine.pdf"])
def test_cli_a_users_file_of_a_name_it_wrote_elsewhere_is_still_refused(tmp_path, monkeypatch, capsys, name):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["plot-shape", "--out", str(tmp_path / "a" / name)]) == 0   # recorded in a/, not in b/
    (tmp_path / "b" / name).write_bytes(b"mine")
    assert main(["plot-shape", "--out", str(tmp_path / "b" / name)]) == 2
    assert "exists; nnunet-polydice never overwrites" in capsys.readouterr().err
    assert (tmp_path / "b" / name).read_bytes() == b"mine"
    (tmp_path / "a" / name).unlink()   # its own file, gone and replaced by the user's: refused after the next run
    assert main(["plot-shape", "--out", str(tmp_path / "a" / "x.png")]) == 0
    (tmp_path / "a" / name).write_bytes(b"mine")
    assert main(["plot-shape", "--out", str(tmp_path / "a" / name)]) == 2
    assert (tmp_path / "a" / name).read_bytes() == b"mine"


def test_cli_extension_picks_the_format_and_an_unknown_one_is_refused(tmp_path, capsys):
    svg = tmp_path / "shape.svg"
    assert main(["plot-shape", "--out", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes()[:1000]
    capsys.readouterr()
    for name, got in (("shape.bmp", "the extension .bmp"), ("shape", "no extension")):
        assert main(["plot-shape", "--out", str(tmp_path / name)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and not (tmp_path / name).exists()
        assert f"--out {tmp_path / name} has {got}; matplotlib writes " in captured.err
        from matplotlib.figure import Figure

        for extension in Figure().canvas.get_supported_filetypes():
            assert f".{extension}" in captured.err


def test_cli_missing_folder_is_a_sentence(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "shape.png"
    assert main(["plot-shape", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"nnunet-polydice plot-shape: error: --out {out}: the folder {out.parent} does not exist; create it first "
        f"or give a file in an existing folder.")
