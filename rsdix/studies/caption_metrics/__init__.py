"""The caption-metric study (notebook 06): are n-gram caption metrics fit for remote-sensing captioning?

Modules:

* ``caption_sets``: the study's caption sets (``CaptionSet``, ``load_caption_set``), normalised
  captions, class terms, seeded sampling;
* ``perturb``: meaning-preserving (WordNet synonym) and meaning-changing caption edits
  (``Perturber``) and the caption pairs (``make_pairs``);
* ``scoring``: the metrics the study scores with, pair scores wide and tidy;
* ``significance``: RSDiX's t-test, paired Wilcoxon tests with effect sizes, p-value corrections;
* ``separation``: paraphrase-vs-edit AUC with bootstrap CIs, retention, per-condition means;
* ``discrimination``: own image's references vs distractor images' (leave one reference out);
* ``correlation``: Spearman correlation between metrics;
* ``study``: the study's config, written conclusions and results-table rows (with their
  RESULTS.md section);
* ``plots``: the study's figures;
* ``wordnet``: the offline WordNet for nltk (``rsdix wordnet install``).
"""
