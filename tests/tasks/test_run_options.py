"""The option tables (birnn.run_options) generate birnn train's flags, a config file's known
keys and the value rules: every row is in all three, and a bad value is refused naming the
flag or the config key, with the row's rule."""

import argparse

import pytest

from birnn import config
from birnn.cli import _parser
from birnn.run_options import MODEL_OPTIONS, SOURCE_OPTIONS, TRAIN_OPTIONS


def _train_actions():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["train"]._actions}


@pytest.mark.parametrize("table,section", [(SOURCE_OPTIONS, "source"), (MODEL_OPTIONS, "model"),
                                           (TRAIN_OPTIONS, "train")])
def test_every_row_is_a_flag_a_config_key_and_a_rule(table, section):
    actions = _train_actions()
    for o in table:
        assert o.name in config.SECTIONS[section], o.name
        if o.flagged:
            assert o.name in actions, f"{o.flag} missing from birnn train"
            assert "{default}" not in (actions[o.name].help or ""), o.name
        if o.rule is not None:
            assert config.RULES[o.name] == (o.type, *o.rule)
        if o.type in (int, float):
            assert o.rule is not None, f"{o.name}: a number needs its rule"


def test_a_rule_refuses_a_bad_value_as_flag_and_as_config_key(capsys, tmp_path):
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--embedding-dim", "0"])
    assert "--embedding-dim: must be in [1, inf), got 0" in capsys.readouterr().err
    with pytest.raises(config.UsageError, match=r"model\.dropout must be in \[0, 1\), got 1\.5"):
        path = tmp_path / "c.toml"
        path.write_text("task = 'classify'\n[model]\ndropout = 1.5\n")
        config.resolve({"config": str(path)})
