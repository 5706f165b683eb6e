"""``rsdix spice`` (rsdix.cli.install_commands)."""
from rsdix.cli import main


def test_spice_install_offline_is_one_line_naming_the_url_and_the_folder(monkeypatch, tmp_path, capsys):
    """SPICE was left out with a warning and nothing installed its jars: `rsdix spice install` runs
    pycocoevalcap's downloader; offline it is one line with the URL and where the jars go."""
    import urllib.error

    from pycocoevalcap.spice import get_stanford_models

    from rsdix.captioning import pycoco

    monkeypatch.setattr(pycoco, "spice_lib", lambda: tmp_path / "lib")
    monkeypatch.setattr(pycoco, "spice_available", lambda: False)

    def offline():
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(get_stanford_models, "get_stanford_models", offline)
    assert main(["spice", "install"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stanford-corenlp-full-2015-12-09.zip" in err and str(tmp_path / "lib") in err
    assert main(["spice", "check"]) == 1
    monkeypatch.setattr(pycoco, "spice_available", lambda: True)
    assert main(["spice", "install"]) == 0 and "SPICE ready" in capsys.readouterr().out
