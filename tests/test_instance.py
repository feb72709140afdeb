"""``Instance(fold, seed)``: the one name of a (fold, seed) run, its spellings, its parse and its order."""

import pytest

from nnunet_polydice.experiments.instance import Instance, fold_sort_key


@pytest.mark.parametrize("inst, key, label, short", [
    (Instance("0", 1), "0:s1", "fold 0 seed 1", "0/s1"),
    (Instance(3), "3", "fold 3", "3"),
    (Instance("10", 12), "10:s12", "fold 10 seed 12", "10/s12"),
    (Instance("all", 0), "all:s0", "fold all seed 0", "all/s0"),
])
def test_spellings_and_parse_round_trip(inst, key, label, short):
    assert (inst.key, inst.label, inst.short) == (key, label, short)
    assert Instance.parse(key) == inst and Instance.of(key) == inst


def test_an_instance_is_the_plain_pair_statistics_takes():
    inst = Instance(0, 2)  # a fold given as an int is stored as nnU-Net's fold name
    assert inst == ("0", 2) and hash(inst) == hash(("0", 2)) and {("0", 2): "x"}[inst] == "x"
    fold, seed = inst
    assert (fold, seed) == ("0", 2) and inst.pair == ("0", 2) and type(inst.pair) is tuple
    assert Instance.of(("1", None)) == Instance("1") and Instance.of(inst) is inst


def test_one_order_numeric_folds_by_number_then_named_unseeded_first():
    runs = [Instance("all"), Instance("10", 0), Instance("2", 1), Instance("2"), Instance("2", 0)]
    assert sorted(runs) == [Instance("2"), Instance("2", 0), Instance("2", 1), Instance("10", 0), Instance("all")]
    assert sorted(["10", "all", "9"], key=fold_sort_key) == ["9", "10", "all"]
    assert fold_sort_key("١") == (1, 0, "١")  # an Arabic-Indic digit is not a fold number


@pytest.mark.parametrize("key", ["0:sx", "0:s-1", "0:s١"])
def test_parse_refuses_a_seed_that_is_not_an_ascii_integer(key):
    with pytest.raises(ValueError, match="is not a run key"):
        Instance.parse(key)
