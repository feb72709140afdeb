"""The trainer-name grammar (nnunet_polydice.integration.naming): pure Python, no nnU-Net needed."""

import math
import re
import sys
from pathlib import Path

import pytest

from nnunet_polydice.integration.naming import (
    FAMILIES,
    InvalidTrainerName,
    catalogue_names,
    format_number,
    parse_trainer_name,
    ready_grid,
    trainer_name,
)
from nnunet_polydice.loss import settings as defaults

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


@pytest.mark.parametrize("value, token", [
    (1, "1"), (1.0, "1"), (0.5, "0p5"), (-0.5, "m0p5"), (1.25, "1p25"), (0.0, "0"), (-0.0, "0"),
    (2, "2"), (0.1, "0p1"), (0.001, "0p001"), (0.3, "0p3"), (0.75, "0p75"), (10.0, "10"), (-1, "m1"),
])
def test_number_tokens_are_the_shortest_decimal_form(value, token):
    assert format_number(value) == token


@pytest.mark.parametrize("name, family, K, eps", [
    ("nnUNetTrainerPolyDice_K3_eps0p5", "nnUNetTrainerPolyDice", 3, 0.5),
    ("nnUNetTrainerPolyDiceCE_Kinf_epsm0p5", "nnUNetTrainerPolyDiceCE", math.inf, -0.5),
    ("nnUNetTrainerPolyDice_K1_eps0", "nnUNetTrainerPolyDice", 1, 0.0),
    ("nnUNetTrainerPolyDice_K12_eps1p25", "nnUNetTrainerPolyDice", 12, 1.25),
    ("nnUNetTrainerPolyDice_K1_epsm0p99", "nnUNetTrainerPolyDice", 1, -0.99),
])
def test_poly_dice_names_resolve_to_their_setting(name, family, K, eps):
    spec = parse_trainer_name(name)
    assert spec.family.name == family
    assert spec.K == K and spec.epsilon == eps
    assert spec.loss_kwargs() == {"K": K, "epsilon": eps}
    assert spec.name == name
    assert spec.family.compound == family.endswith("CE")


def test_tversky_names_carry_alpha_beta_gamma():
    spec = parse_trainer_name("nnUNetTrainerFocalTverskyCE_a0p3_b0p7_g0p75")
    assert spec.loss_kwargs() == {"alpha": 0.3, "beta": 0.7, "gamma": 0.75}
    spec = parse_trainer_name("nnUNetTrainerPolyTversky_K2_eps1_a0p5_b0p5")
    assert spec.loss_kwargs() == {"K": 2, "epsilon": 1.0, "alpha": 0.5, "beta": 0.5}
    assert parse_trainer_name("nnUNetTrainerTversky_a0p7_b0p3").loss_kwargs() == {"alpha": 0.7, "beta": 0.3}


def test_unsuffixed_names_use_the_documented_defaults():
    assert parse_trainer_name("nnUNetTrainerPolyDice").loss_kwargs() == {
        "K": defaults.DEFAULT_K, "epsilon": defaults.DEFAULT_EPSILON}
    assert parse_trainer_name("nnUNetTrainerTversky").loss_kwargs() == {"alpha": 0.3, "beta": 0.7}
    assert parse_trainer_name("nnUNetTrainerFocalTversky").loss_kwargs() == {"alpha": 0.3, "beta": 0.7,
                                                                             "gamma": 0.75}
    assert parse_trainer_name("nnUNetTrainerPolyDiceCE").family.compound


def test_schedule_suffix_on_our_names_and_on_nnunet_trainers():
    spec = parse_trainer_name("nnUNetTrainerPolyDice_K2_eps0_30ep20it")
    assert (spec.epochs, spec.iterations, spec.K, spec.epsilon) == (30, 20, 2, 0.0)
    spec = parse_trainer_name("nnUNetTrainer_5ep2it")
    assert spec.family is None and spec.base == "nnUNetTrainer" and (spec.epochs, spec.iterations) == (5, 2)
    spec = parse_trainer_name("nnUNetTrainerDiceLoss_5ep2it")
    assert spec.base == "nnUNetTrainerDiceLoss"


@pytest.mark.parametrize("name", ["nnUNetTrainer", "nnUNetTrainerDiceLoss", "nnUNetTrainer_5epochs",
                                  "MyTrainer", "nnUNetTrainerPolyDiceLoss", "nnUNetTrainerPolyDicey_K2_eps1"])
def test_other_names_are_not_ours(name):
    assert parse_trainer_name(name) is None


@pytest.mark.parametrize("name, message", [
    ("nnUNetTrainerPolyDice_K0_eps1", r"K must be a positive integer or inf \(got 0\)"),
    ("nnUNetTrainerPolyDice_K2_epsm2", r"epsilon must be >= -1"),
    ("nnUNetTrainerPolyDice_K1_epsm1", r"identically zero"),
    ("nnUNetTrainerPolyDice_K2_eps1p0", r"canonical name of this setting is 'nnUNetTrainerPolyDice_K2_eps1'"),
    ("nnUNetTrainerPolyDice_K03_eps1", r"canonical name of this setting is 'nnUNetTrainerPolyDice_K3_eps1'"),
    ("nnUNetTrainerPolyDice_K2_eps0p50", r"'nnUNetTrainerPolyDice_K2_eps0p5'"),
    ("nnUNetTrainerPolyDice_K2", r"Allowed: nnUNetTrainerPolyDice \(defaults\) or nnUNetTrainerPolyDice_K<K>_eps<NUM>"),
    ("nnUNetTrainerPolyDice_eps1", r"not a valid nnUNetTrainerPolyDice name"),
    ("nnUNetTrainerPolyDice_K2_eps1_extra", r"not a valid nnUNetTrainerPolyDice name"),
    ("nnUNetTrainerPolyDice_Kx_eps1", r"not a valid"),
    ("nnUNetTrainerPolyDice_K2_eps-1", r"not a valid"),
    ("nnUNetTrainerTversky_a0p3", r"nnUNetTrainerTversky_a<NUM>_b<NUM>"),
    ("nnUNetTrainerTversky_a0_b0", r"alpha \+ beta|alpha|beta"),
    ("nnUNetTrainerFocalTversky_a0p3_b0p7_g0", r"gamma"),
    ("nnUNetTrainerPolyDice_0ep5it", r"positive integers"),
])
def test_bad_names_of_our_families_say_what_is_allowed(name, message):
    with pytest.raises(InvalidTrainerName, match=message):
        parse_trainer_name(name)


@pytest.mark.parametrize("name", ["nnUNetTrainer_99999999ep1it", "nnUNetTrainerPolyDice_1ep99999999it_s0",
                                  "nnUNetTrainerDiceLoss_10001ep1it", "nnUNetTrainerPolyDice_K2_eps1_1ep10001it",
                                  "nnUNetTrainer_1ep" + "9" * 40 + "it_s3"])
def test_schedule_suffixes_past_the_bounds_are_refused_with_the_bounds(name):
    from nnunet_polydice.integration.naming import MAX_EPOCHS, MAX_ITERATIONS

    bounds = rf"epochs from 1 to {MAX_EPOCHS} and iterations from 1 to {MAX_ITERATIONS}"
    with pytest.raises(InvalidTrainerName, match=bounds) as err:
        parse_trainer_name(name)
    assert str(err.value).startswith(f"Trainer name {name!r}:")  # the whole name, seed suffix included


def test_schedule_suffixes_at_the_bounds_pass():
    assert parse_trainer_name("nnUNetTrainer_10000ep10000it_s0").epochs == 10000
    assert parse_trainer_name("nnUNetTrainerPolyDice_10000ep1it").iterations == 1


def test_the_schedule_bounds_live_in_naming_and_checks_uses_them():
    from nnunet_polydice.experiments import checks
    from nnunet_polydice.integration import naming

    assert (checks.MAX_EPOCHS, checks.MAX_ITERATIONS) == (naming.MAX_EPOCHS, naming.MAX_ITERATIONS) == (10000, 10000)
    assert checks.MAX_EPOCHS is naming.MAX_EPOCHS


def test_invalid_trainer_name_is_a_value_error_not_attribute_error():
    # nnU-Net's lookup uses hasattr(): an AttributeError would turn into its generic "could not find".
    assert issubclass(InvalidTrainerName, ValueError)
    assert not issubclass(InvalidTrainerName, AttributeError)


def test_ready_grid_is_both_families_times_k_times_epsilon():
    grid = ready_grid()
    assert len(grid) == 2 * 4 * 5 == len(set(grid))
    for fam in ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE"):
        for k in ("1", "2", "3", "inf"):
            for eps in ("m0p5", "0", "0p5", "1", "2"):
                assert f"{fam}_K{k}_eps{eps}" in grid


def test_trainer_name_builds_the_canonical_name():
    assert trainer_name("nnUNetTrainerPolyDice", K=3, epsilon=0.5) == "nnUNetTrainerPolyDice_K3_eps0p5"
    assert trainer_name("nnUNetTrainerPolyDiceCE", K=math.inf, epsilon=-0.5) == \
        "nnUNetTrainerPolyDiceCE_Kinf_epsm0p5"
    assert trainer_name("nnUNetTrainerTversky") == "nnUNetTrainerTversky"
    assert trainer_name("nnUNetTrainerPolyDice", K=2, epsilon=1, epochs=3, iterations=4) == \
        "nnUNetTrainerPolyDice_K2_eps1_3ep4it"
    with pytest.raises(ValueError, match="missing"):
        trainer_name("nnUNetTrainerPolyDice", K=2)


def test_formulas_state_the_loss():
    assert parse_trainer_name("nnUNetTrainerPolyDice_K1_eps0").formula() == "u, u=1-D"
    assert parse_trainer_name("nnUNetTrainerPolyDice_Kinf_eps1").formula() == "-log(1-u) + 1*u, u=1-D"
    assert parse_trainer_name("nnUNetTrainerPolyDiceCE_K3_epsm0p5").formula() == \
        "CE + sum_j=1..3 u^j/j - 0.5*u, u=1-D"
    assert parse_trainer_name("nnUNetTrainerTversky").formula() == "1 - T(a=0.3,b=0.7)"


def test_entry_points_declare_exactly_the_catalogue():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    eps = pyproject["project"]["entry-points"]["nnunetv2.trainers"]
    assert sorted(eps) == sorted(catalogue_names())
    for name, target in eps.items():
        assert target == f"nnunet_polydice.trainers.nnunet_polydice_trainers:{name}"
    assert set(FAMILIES) <= set(eps)


# only the canonical ASCII spelling resolves: Python's int() reads other scripts' digits, and a trailing newline
# would make a second results folder for the same setting

@pytest.mark.parametrize("name", [
    "nnUNetTrainerPolyDice_\u0662ep\u0665it",          # Arabic-Indic digits 2 and 5
    "nnUNetTrainerPolyDice_K\u0663_eps1",              # K = Arabic-Indic 3
    "nnUNetTrainerPolyDice_K2_eps\uff11",              # fullwidth 1
    "nnUNetTrainerPolyDice\n",
    "nnUNetTrainerPolyDiceCE \n",
    "nnUNetTrainerPolyDice_K2_eps1\n",
    "nnUNetTrainerPolyDice_2ep5it\n",
])
def test_our_names_with_other_digits_or_a_trailing_newline_are_refused(name):
    with pytest.raises(InvalidTrainerName, match=r"is not a valid nnUNetTrainerPolyDice(CE)? name.*"
                                                 r"digits are ASCII 0-9 and nothing follows the name\."):
        parse_trainer_name(name)


@pytest.mark.parametrize("name", ["nnUNetTrainer_\u0662ep\u0665it", "nnUNetTrainer\n", "nnUNetTrainer_2ep5it\n",
                                  "nnUNetTrainer\n_2ep5it"])
def test_other_names_with_other_digits_or_a_trailing_newline_are_not_ours(name):
    # not one of our families, and no schedule variant of nnU-Net's trainer either: nnU-Net's lookup finds nothing
    assert parse_trainer_name(name) is None
    assert parse_trainer_name("nnUNetTrainer_2ep5it").base == "nnUNetTrainer"


@pytest.mark.parametrize("name, base, epochs, seed", [
    ("nnUNetTrainer_s2", "nnUNetTrainer", None, 2),
    ("nnUNetTrainer_30ep40it_s2", "nnUNetTrainer", 30, 2),
    ("nnUNetTrainerPolyDice_K3_eps0p5_30ep40it_s0", "nnUNetTrainerPolyDice", 30, 0),
    ("nnUNetTrainerPolyDice_s4294967295", "nnUNetTrainerPolyDice", None, 4294967295),
    ("nnUNetTrainerDiceLoss_s10", "nnUNetTrainerDiceLoss", None, 10),
])
def test_a_seed_suffix_makes_a_seeded_name_that_round_trips(name, base, epochs, seed):
    spec = parse_trainer_name(name)
    assert (spec.base, spec.epochs, spec.seed) == (base, epochs, seed)
    assert spec.name == name


def test_names_without_a_seed_are_unseeded_and_unchanged():
    for name in ("nnUNetTrainerPolyDice", "nnUNetTrainer_5ep2it", "nnUNetTrainerPolyDiceCE_K2_eps1"):
        assert parse_trainer_name(name).seed is None
    assert parse_trainer_name("nnUNetTrainer") is None  # nnU-Net's own name, unseeded: not ours to make


def test_every_name_of_one_setting_has_one_setting_key():
    """The family name and its explicit default name, with any seed, are one setting (one row in tables)."""
    keys = {parse_trainer_name(n).setting for n in (
        "nnUNetTrainerPolyDice_K2_eps1_30ep40it", "nnUNetTrainerPolyDice_30ep40it", "nnUNetTrainerPolyDice_30ep40it_s0",
        "nnUNetTrainerPolyDice_K2_eps1_30ep40it_s7")}
    assert keys == {"nnUNetTrainerPolyDice_K2_eps1_30ep40it"}
    assert parse_trainer_name("nnUNetTrainer_30ep40it_s1").setting == "nnUNetTrainer_30ep40it"
    assert parse_trainer_name("nnUNetTrainerPolyDice_K3_eps1_30ep40it_s0").setting != keys.pop()


@pytest.mark.parametrize("name, says", [
    ("nnUNetTrainer_s01", "'nnUNetTrainer_s1'"),
    ("nnUNetTrainerPolyDice_K2_eps1_s007", "'nnUNetTrainerPolyDice_K2_eps1_s7'"),
    ("nnUNetTrainerPolyDice_s-1", "from 0 to 4294967295"),
    ("nnUNetTrainer_30ep40it_s-3", "from 0 to 4294967295"),
    ("nnUNetTrainer_s4294967296", "from 0 to 4294967295"),
    ("nnUNetTrainerPolyDice_s1_s2", "two seed suffixes"),
    ("nnUNetTrainer_s1_30ep40it_s2", "two seed suffixes"),
    ("nnUNetTrainerPolyDice_s1_30ep40it", "'nnUNetTrainerPolyDice_30ep40it_s1'"),
    ("nnUNetTrainer_s0_5ep2it", "'nnUNetTrainer_5ep2it_s0'"),
    ("nnUNetTrainerPolyDice_K2_eps1p0_s1", "'nnUNetTrainerPolyDice_K2_eps1_s1'"),
    ("nnUNetTrainerPolyDice_s", "_s<seed>"),
])
def test_malformed_seeds_are_refused_with_the_canonical_spelling_or_the_range(name, says):
    with pytest.raises(InvalidTrainerName) as err:
        parse_trainer_name(name)
    assert says in str(err.value)


def test_trainer_name_builds_seeded_names():
    assert trainer_name("nnUNetTrainerPolyDice", K=3, epsilon=0.5, epochs=30, iterations=40, seed=0) == \
        "nnUNetTrainerPolyDice_K3_eps0p5_30ep40it_s0"
    with pytest.raises(ValueError, match="from 0 to"):
        trainer_name("nnUNetTrainerPolyDice", seed=-1)


@pytest.mark.parametrize("name, says", [
    ("nnUNetTrainerPolyDice_s" + "9" * 5000, "the seed suffix _s<N> needs N from 0 to 4294967295 (got "
                                             "9999999999999999999999999999999999999999... (5000 digits))"),
    ("nnUNetTrainer_" + "9" * 5000 + "ep3it", "takes epochs from 1 to 10000 and iterations from 1 to 10000"),
    ("nnUNetTrainerPolyDice_K" + "9" * 5000 + "_eps0", "K is at most 1000 (or inf)"),
    ("nnUNetTrainerPolyDice_K1001_eps0", "K is at most 1000 (or inf)"),
    ("nnUNetTrainerPolyDice_K1_eps" + "9" * 5000, "every other number is finite"),
])
def test_numbers_too_long_for_python_are_refused_with_the_names_sentence(name, says):
    """Python converts at most 4300 digits to an int and names no option when it refuses; the grammar's bounds are
    checked on the digits first, and the name is quoted by its start and length."""
    with pytest.raises(InvalidTrainerName, match=re.escape(says)) as err:
        parse_trainer_name(name)
    assert "4300" not in str(err.value) and len(str(err.value)) < 1000
