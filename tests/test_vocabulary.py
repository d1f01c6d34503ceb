"""One vocabulary: the format's names (tensor kinds, mask kinds, scale / gamma modes, init rules
and their families and fan rules, rng ids) are listed only in ``ticketpack/format/constants.py``.
Any other module that needs a list of them derives it from there, so two lists cannot drift.
Read from the source with ``ast``: a tuple, list or set literal holding two or more of these
names outside constants.py (and the exported loader, a stand-alone file) fails."""

from __future__ import annotations

import ast
from pathlib import Path

from ticketpack.format import constants

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "ticketpack" / "format" / "constants.py"
STANDALONE = ROOT / "ticketpack" / "loader" / "tpk_loader.py"

FORMAT_NAMES = (set(constants.TENSOR_KINDS) | set(constants.MASK_KINDS) | set(constants.SCALE_MODES)
                | set(constants.GAMMA_MODES) | set(constants.INIT_RULES) | set(constants.INIT_FAMILIES)
                | set(constants.FAN_RULES) | set(constants.INIT_RECIPES)
                | {constants.RNG_ID, constants.PG_RNG_PREFIX})


def name_lists(source: str, names: set[str]) -> list[tuple[int, list[str]]]:
    """(line, names) of each tuple / list / set literal in ``source`` with >= 2 distinct ``names``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            hits = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
            if len(set(hits)) >= 2:
                found.append((node.lineno, hits))
    return found


def sources() -> list[Path]:
    files = list((ROOT / "ticketpack").rglob("*.py")) + list((ROOT / "cli").glob("*.py"))
    return sorted(f for f in files if f not in (HOME, STANDALONE))


def test_format_names_are_listed_only_in_constants():
    repeated = [f"{path.relative_to(ROOT)}:{line}: {hits}" for path in sources()
                for line, hits in name_lists(path.read_text(encoding="utf-8"), FORMAT_NAMES)]
    assert repeated == [], "list these through ticketpack/format/constants.py"


def test_estimator_names_are_listed_only_in_mask_training():
    """The training vocabulary has its own home: nn/mask_training.py (ESTIMATORS by mask kind),
    torch-free, so the command line's help and checks read it too."""
    from ticketpack.nn.mask_training import estimator_names
    from ticketpack.train.options import TrainOptions

    names = set(estimator_names()) - set(constants.MASK_KINDS)
    home = ROOT / "ticketpack" / "nn" / "mask_training.py"
    repeated = [f"{path.relative_to(ROOT)}:{line}: {hits}" for path in sources() if path != home
                for line, hits in name_lists(path.read_text(encoding="utf-8"), names)]
    assert repeated == [], "list these through ticketpack/nn/mask_training.py"
    help_text = TrainOptions.__dataclass_fields__["estimator"].metadata["help"]
    assert all(name in help_text for name in estimator_names())


def test_the_scan_sees_a_repeated_list():
    assert name_lists('MODES = ("none", "tensor", "row")', FORMAT_NAMES) == [(1, ["none", "tensor", "row"])]
    assert name_lists('x = {"xavier_uniform", "he_uniform"}', FORMAT_NAMES) != []
    assert name_lists('if rule == "xavier_uniform": pass', FORMAT_NAMES) == []  # one name is a use
    assert name_lists(HOME.read_text(encoding="utf-8"), FORMAT_NAMES) != []  # where they are listed


def test_every_init_rule_is_offered_by_train_init():
    from ticketpack.models.gpt_config import INIT_CHOICES

    for rule, row in constants.INIT_RULES.items():  # normal_std needs a std per entry: not a GPT choice
        assert INIT_CHOICES.get(rule) == ((rule,) * 3 if row.fan != constants.STD_FROM_ENTRY else None)
    for recipe, rules in constants.INIT_RECIPES.items():
        assert INIT_CHOICES[recipe] == rules and set(rules) <= set(constants.INIT_RULES)


def test_the_cli_offers_the_init_choices():
    from ticketpack.cli.main import main
    from ticketpack.models.gpt_config import INIT_CHOICES

    option = next(p for p in main.commands["train"].params if p.name == "init")
    assert list(option.type.choices) == list(INIT_CHOICES)


def test_format_md_defines_the_init_rule_table():
    """docs/FORMAT.md section 4 lists exactly the rules (family, fan rule) and family numerators
    of the constants: a new rule is a row in both."""
    import re

    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    rows = re.findall(r"^  \| `(\w+)` \| `(\w+)` \| `([\w+]+)` \|$", text, re.M)
    assert {name: (family, fan) for name, family, fan in rows} == \
        {name: (rule.family, rule.fan) for name, rule in constants.INIT_RULES.items()}
    families = re.findall(r"^  \| `(\w+)` \| (\d+) \| ", text, re.M)
    assert {family: float(n) for family, n in families} == constants.INIT_FAMILIES
    for fan_rule in constants.FAN_RULES:
        assert f"`{fan_rule}`" in text
