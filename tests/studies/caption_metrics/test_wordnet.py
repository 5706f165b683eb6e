"""Offline WordNet folder for nltk: lexnames, real-file copies, clear errors."""
from __future__ import annotations

import pytest

from rsdix import cli
from rsdix.studies.caption_metrics import wordnet as rw


def _fake_source(tmp_path, link: bool = False):
    src = tmp_path / "wn"
    src.mkdir()
    store = tmp_path / "store"
    store.mkdir()
    for name in rw.REQUIRED + ("cntlist.rev",):
        if link:
            (store / name).write_text(f"content of {name}\n")
            (src / name).symlink_to(store / name)
        else:
            (src / name).write_text(f"content of {name}\n")
    return src


def test_lexnames_has_45_files_with_categories():
    lines = rw.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[44] == "44\tadj.ppl\t3" and lines[2] == "02\tadv.all\t4"


def test_install_copies_real_files_and_writes_lexnames(tmp_path):
    src = _fake_source(tmp_path, link=True)
    dest = rw.install(tmp_path / "nltk_data", source=src)
    folder = dest / "corpora" / "wordnet"
    for name in rw.REQUIRED + ("cntlist.rev", "lexnames"):
        assert (folder / name).is_file() and not (folder / name).is_symlink()
    assert (folder / "data.noun").read_text() == "content of data.noun\n"
    assert (folder / "lexnames").read_text() == rw.lexnames_text()
    assert rw.find_wordnet(dest) == dest.resolve()
    assert rw.wordnet_available(dest)


def test_missing_database_names_apt_packages_and_command(tmp_path, capsys):
    with pytest.raises(rw.WordNetMissingError, match=r"wordnet-base wordnet-sense-index.*rsdix wordnet install"):
        rw.install(tmp_path / "out", source=tmp_path / "nowhere")
    with pytest.raises(rw.WordNetMissingError, match=str(tmp_path / "empty")):
        rw.find_wordnet(tmp_path / "empty")
    assert cli.main(["wordnet", "install", "--source", str(tmp_path / "nowhere"), "--dest", str(tmp_path / "o")]) == 2
    assert "apt-get install -y wordnet-base wordnet-sense-index" in capsys.readouterr().err


@pytest.mark.skipif(not rw.wordnet_available(), reason="WordNet not installed: apt-get install -y wordnet-base "
                                                      "wordnet-sense-index && rsdix wordnet install")
def test_real_wordnet_loads_offline():
    wn = rw.load_wordnet()
    lemmas = {l.name() for s in wn.synsets("airplane") for l in s.lemmas()}
    assert {"airplane", "aeroplane", "plane"} <= lemmas
    assert wn.synsets("river")[0].lexname() == "noun.object"  # needs the lexnames file
