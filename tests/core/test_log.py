"""rsdix.log: the ``rsdix`` logger's one-time setup (short format on stderr, levels, a program's
own logging config left alone), the command line's --quiet / --verbose, and quiet_messages."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

import rsdix.cli as cli
from rsdix.cli import install_commands
from rsdix import log


@pytest.fixture
def fresh_rsdix_logger():
    """The rsdix logger as an unconfigured program has it; restored afterwards."""
    logger = logging.getLogger(log.ROOT)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers[:] = []
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_get_logger_names_children_of_rsdix():
    assert log.get_logger("rsdix.reporting.reproduce").name == "rsdix.reporting.reproduce"
    assert log.get_logger("notebook").name == "rsdix.notebook"
    assert log.get_logger().name == "rsdix"


def test_short_format_names_the_module_and_marks_warnings():
    fmt = log.ShortFormatter()
    record = logging.LogRecord("rsdix.reporting.reproduce", logging.INFO, __file__, 1, "01_data.ipynb: %s",
                               ("ran",), None)
    assert fmt.format(record) == "[reproduce] 01_data.ipynb: ran"
    record = logging.LogRecord("rsdix.training.checkpoints", logging.WARNING, __file__, 1, "config changed", (), None)
    assert fmt.format(record) == "[checkpoints] warning: config changed"
    record = logging.LogRecord("rsdix.models", logging.DEBUG, __file__, 1, "details", (), None)
    assert fmt.format(record) == "[models] debug: details"


def test_setup_once_to_stderr_at_info_and_leaves_a_programs_config_alone(fresh_rsdix_logger, capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])     # no program config (pytest adds its own)
    monkeypatch.delenv(log.LEVEL_ENV, raising=False)
    logger = log.setup()
    assert log.configured() and logger.level == logging.INFO and not logger.propagate
    log.get_logger("rsdix.x").info("shown")
    log.get_logger("rsdix.x").debug("hidden")
    assert capsys.readouterr().err == "[x] shown\n"
    log.setup("DEBUG")                                              # a second call changes nothing
    assert logger.level == logging.INFO
    assert sum(isinstance(h, log.StderrHandler) for h in logger.handlers) == 1


def test_setup_respects_a_root_handler_and_the_level_variable(fresh_rsdix_logger, monkeypatch):
    root_handler = logging.StreamHandler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [root_handler])
    log.setup()
    assert not log.configured() and fresh_rsdix_logger.propagate     # the program's handlers get the records
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setenv(log.LEVEL_ENV, "warning")
    assert log.setup().level == logging.WARNING


@pytest.mark.parametrize("flag, shown, hidden", [
    ([], ["[t] info line", "[t] warning: warn line"], ["debug line"]),
    (["--quiet"], ["[t] warning: warn line"], ["info line", "debug line"]),
    (["--verbose"], ["[t] debug: debug line", "[t] info line"], []),
])
def test_cli_quiet_and_verbose(flag, shown, hidden, monkeypatch, capsys, fresh_rsdix_logger):
    seen = {}

    def fake_command(args):
        t = log.get_logger("rsdix.t")
        t.debug("debug line")
        t.info("info line")
        t.warning("warn line")
        seen["env"] = log.level_from_env()
        return 0

    monkeypatch.setattr(install_commands, "cmd_wordnet", fake_command)
    monkeypatch.delenv(log.LEVEL_ENV, raising=False)
    assert cli.main([*flag, "wordnet", "check"]) == 0
    err = capsys.readouterr().err
    for text in shown:
        assert text in err
    for text in hidden:
        assert text not in err
    assert seen["env"] == {"--quiet": logging.WARNING, "--verbose": logging.DEBUG}.get(flag[0] if flag else "", 20)
    # afterwards the logging state and the environment are as before (main called from Python)
    assert not log.configured() and log.LEVEL_ENV not in os.environ


def test_quiet_messages_drops_only_the_named_message_while_the_block_runs(caplog):
    caplog.set_level(logging.WARNING)
    with log.quiet_messages({"": log.starts_with("No pretrained weights loaded for model 'rsdix-tiny'"),
                             "transformers.modeling_utils": lambda t: "LOAD REPORT" in t}):
        logging.warning("No pretrained weights loaded for model 'rsdix-tiny'. Model initialized randomly.")
        logging.warning("another warning")
        logging.getLogger("transformers.modeling_utils").warning("BertModel LOAD REPORT from: x")
        logging.getLogger("transformers.other").warning("LOAD REPORT elsewhere")
    logging.warning("No pretrained weights loaded for model 'rsdix-tiny'. after the block")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["another warning", "LOAD REPORT elsewhere",
                        "No pretrained weights loaded for model 'rsdix-tiny'. after the block"]


def test_quiet_messages_keeps_logging_unconfigured_in_a_fresh_process():
    """open_clip's logging.warning() would call basicConfig() (``WARNING:root:`` for the whole
    program); inside the block root stays without handlers, and other warnings still print."""
    code = ("import logging\nfrom rsdix import log\n"
            "with log.quiet_messages({'': log.starts_with('No pretrained')}):\n"
            "    logging.warning('No pretrained weights loaded'); logging.info('x'); logging.warning('kept')\n"
            "print(len(logging.getLogger().handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    assert out.stderr.strip() == "kept"


def test_warn_once_warns_once_per_category_and_message_even_after_catch_warnings():
    import warnings
    from rsdix.log import forget_warned, warn_once
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_once("x") and not warn_once("x")
        with warnings.catch_warnings():
            pass
        assert not warn_once("x") and warn_once("y") and warn_once("x", RuntimeWarning)
        forget_warned()
        assert warn_once("x")
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "x"), (UserWarning, "y"), (RuntimeWarning, "x"), (UserWarning, "x")]
