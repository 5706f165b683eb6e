"""Evaluation of CLIP-style models (notebook 05), metrics as plain functions over cached features.

* ``suite``: :class:`EvalConfig`, the task table ``TASKS`` (one function per task),
  ``evaluate_model``, ``evaluate_models``, ``prefetch_image_features``.
* ``datasets``: registry lookup, classification and caption sets as the suite loads them.
* ``accuracy``: top-1/top-5/balanced accuracy, confusion matrix.
* ``zero_shot``: class embeddings from names x templates, zero-shot classification.
* ``templates``: the prompt-template sets (data: ``protocols/templates.yaml``, with sources).
* ``protocols``: the evaluation protocols as data (template set, probe split, official splits,
  class lists, which sets are built on which caption set: "not zero-shot" rows).
* ``leakage_audit``: exact, pHash and feature near-duplicates across datasets (``rsdix data leakage``).
* ``retrieval``: image<->text recall@k (headline: torch.topk as CLIP_benchmark; ``*_tie_expected``:
  ties at random, in expectation), the retrieval task.
* ``probes``: weighted k-NN, linear probe, few-shot probes, the seeded stratified split.
* ``counting``: count words in captions, their ten variants, counting accuracy and task.
* ``multilingual``: evaluation per language on one multilingual caption set.
* ``quick_check``: the small check run during training (UCM mR, WHU-RS19 zero-shot top-1).
* ``named_suites``: the named suites (``remoteclip``, ``rsdix``) and the summary of ``rsdix evaluate``.
* ``model_specs``: which models a run evaluates (saved model folders, baselines, model specs).
* ``published``: our numbers beside the published ones.
* ``eval_report``: notebook 05's tables and markdown summary; ``eval_figures``: its figures.
"""
