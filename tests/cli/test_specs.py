"""Model specs on the command line (rsdix.cli.specs)."""


def test_default_evaluate_folders_differ_for_two_model_folders_of_one_name(tmp_path, monkeypatch):
    from rsdix.cli.specs import default_evaluate_dir

    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    for side in ("a", "b"):
        (tmp_path / side / "model").mkdir(parents=True)
    a, b = (default_evaluate_dir(str(tmp_path / s / "model"), "model") for s in ("a", "b"))
    assert a != b and a.parent == b.parent == tmp_path / "runs" / "evaluate" and a.name.startswith("model-")
    assert default_evaluate_dir(f"x={tmp_path / 'a' / 'model'}", "x") == a.with_name("x-" + a.name.split("-")[1])
    assert default_evaluate_dir("rsdix-tiny", "rsdix-tiny") == tmp_path / "runs" / "evaluate" / "rsdix-tiny"


def test_a_preset_evaluated_is_seeded_and_labelled_random_weights():
    """`rsdix evaluate rsdix-tiny` built new random weights on every call (two runs, two sets of
    numbers) under a plain preset name; now they are seeded and every row says so."""
    from rsdix.cli.specs import model_from_spec

    (label_a, a, _), (label_b, b, _) = (model_from_spec("rsdix-tiny", "cpu", seed=3) for _ in range(2))
    assert a.fingerprint() == b.fingerprint() and label_a == label_b == "rsdix-tiny-random-weights-s3"
    assert model_from_spec("rsdix-tiny", "cpu", seed=4)[1].fingerprint() != a.fingerprint()
    assert model_from_spec("mine=rsdix-tiny", "cpu")[0] == "mine"
