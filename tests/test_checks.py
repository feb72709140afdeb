"""experiments/checks.py: every kind of argument a user types is checked in one place, with a sentence that
names the option, the value and what is allowed (MONAI's test_ill_opts, one case per spelling)."""

import pytest

from nnunet_polydice.experiments import checks
from nnunet_polydice.integration.naming import MAX_SEED


@pytest.mark.parametrize("value, expected", [(0, 0), (7, 7), (MAX_SEED, MAX_SEED), ("42", 42), (" 3 ", 3)])
def test_seeds_in_range_pass(value, expected):
    assert checks.check_seed(value) == expected


@pytest.mark.parametrize("value", [-1, "-1", MAX_SEED + 1, str(2**64), 1.5, "1.5", "abc", "", True, None, "١"])
def test_seeds_out_of_range_or_not_integers_are_refused_naming_option_and_range(value):
    with pytest.raises(ValueError, match=rf"^--seed must be an integer from 0 to {MAX_SEED} \(got "):
        checks.check_seed(value)


def test_the_seed_sentence_names_the_option_given():
    with pytest.raises(ValueError, match=r"^compare's --seed must be an integer from 0 to 4294967295 \(got -3\)\.$"):
        checks.check_seed(-3, "compare's --seed")


def test_seed_lists():
    assert checks.check_seeds([3, "0", 1]) == [3, 0, 1]
    assert checks.check_seeds((MAX_SEED,), "--seeds") == [MAX_SEED]


@pytest.mark.parametrize("values, message", [
    ([], r"^--seeds needs at least one seed, each an integer from 0 to 4294967295"),
    (None, r"^--seeds needs at least one seed"),
    ("12", r"^--seeds needs at least one seed"),
    ([1, 2, 1], r"^--seeds gives the seed 1 more than once; give each seed once\.$"),
    ([1, "01"], r"^--seeds gives the seed 1 more than once"),
    ([0, -1], r"^--seeds must be an integer from 0 to 4294967295 \(got -1\)\.$"),
    ([2**32], r"^--seeds must be an integer from 0 to 4294967295 \(got 4294967296\)\.$"),
])
def test_bad_seed_lists_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        checks.check_seeds(values)
