"""The config file: flags over config over built-in defaults, one-line errors, the key map,
saving a setting without losing the person's comments, and ``aeep-tui config``."""

from __future__ import annotations

import pytest

from aeep_core import locations
from aeep_tui.cli import build_parser, main
from aeep_tui.cli.label import read_config, settings_from_args
from aeep_tui.config import EXAMPLE, ConfigError, load_config, save_setting


def write_config(text: str):
    path = locations.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def parsed(*argv: str):
    args = build_parser().parse_args(list(argv))
    read_config(args)
    return args


@pytest.mark.parametrize("command", ["label", "demo"])
def test_flags_override_the_config_which_overrides_the_defaults(tmp_path, command):
    data = [str(tmp_path)] if command == "label" else []
    args = parsed(command, *data)
    assert (args.batch_size, args.device, args.strategy) == (12, "auto", "aeep")  # built in: ProjectSettings's

    write_config('batch_size = 7\ndevice = "cpu"\nstrategy = "random"\n')
    args = parsed(command, *data)
    assert (args.batch_size, args.device, args.strategy) == (7, "cpu", "random")

    args = parsed(command, *data, "-k", "3", "--strategy", "badge")
    assert (args.batch_size, args.device, args.strategy) == (3, "cpu", "badge")


def test_the_key_map_names_classes_or_their_index(tmp_path):
    write_config('[keys]\ncat = "c"\n2 = "b"\n')
    args = parsed("label", str(tmp_path), "--classes", "cat,dog,bird")
    settings = settings_from_args(args)
    assert settings.keys == ["c", "1", "b"]  # dog takes the first free key as before
    assert settings.batch_size == 12


@pytest.mark.parametrize(
    "text, where, says",
    [
        ("batch_size = 8\ndevice = cpu\n", "line 2", "not valid TOML"),
        ('device = "cpu"\ncolour = "blue"\n', "(line 2)", "unknown key 'colour'"),
        ("batch_size = 0\n", "(line 1)", "whole number from 1 to 100"),
        ('strategy = "fastest"\n', "(line 1)", "use one of aeep"),
        ('device = "tpu"\n', "(line 1)", "auto, cpu, cuda, mps"),
        ('[keys]\ncat = "h"\n', "(line 2)", "other than h j k l s q g r"),
        ('[keys]\ncat = "c"\ndog = "c"\n', "config.toml:", "its own key"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_file_the_line_and_the_fix(text, where, says, capsys, tmp_path):
    path = write_config(text)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and where in message and says in message
    # the command line says it in one line and stops before touching anything
    assert main(["label", str(tmp_path)]) == 2
    out = capsys.readouterr().err.strip()
    assert out == f"aeep-tui: error: {message}"


def test_the_example_is_a_valid_config_and_config_prints_it(capsys):
    assert main(["config", "--example"]) == 0
    assert capsys.readouterr().out == EXAMPLE
    write_config(EXAMPLE)
    config = load_config()
    assert (config.device, config.batch_size, config.strategy, config.theme) == ("cpu", 16, "aeep", "gruvbox")
    assert config.keys == {"cat": "c", "dog": "d", "2": "b"}
    assert main(["config", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(locations.config_file())
    assert main(["config"]) == 0
    assert "batch_size = 16" in capsys.readouterr().out


def test_saving_the_theme_keeps_comments_and_tables():
    path = write_config('# mine\ndevice = "cpu"  # the laptop\n\n[keys]\ncat = "c"\n')
    save_setting("theme", "nord")
    text = path.read_text()
    assert text.startswith('# mine\ndevice = "cpu"  # the laptop\n') and 'theme = "nord"\n[keys]' in text.replace("\n\n", "\n")
    assert load_config().theme == "nord" and load_config().keys == {"cat": "c"}
    save_setting("theme", "gruvbox")  # replaced in place, not added twice
    assert path.read_text().count("theme =") == 1 and load_config().theme == "gruvbox"
    path.unlink()
    save_setting("theme", "nord")  # no file yet: one is made
    assert load_config().theme == "nord"
