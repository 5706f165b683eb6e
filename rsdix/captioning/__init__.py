"""Stage 5, captioning: RSDiX-CLIPCap (a CLIP image encoder, a mapping network and GPT-2) and the
caption metrics. Must not import :mod:`rsdix.evaluation` (its sibling).

Modules:

* ``tokenizers``: caption tokenizers (trained on the training captions or loaded by name),
  caption token ids and their padding;
* ``model``: :class:`CaptionerConfig`, the mapping networks (MLP, transformer), the masked
  caption loss, :class:`ClipCap`, building the decoder and the captioner;
* ``decoding``: :class:`DecodeConfig`, greedy / beam / nucleus decoding into captions;
* ``caption_data``: the frozen encoder's cached image embeddings, the training items and their collate;
* ``training``: :class:`CaptionTrainConfig`, the caption objective for the shared training loop,
  :func:`train_captioner`, :func:`caption_images`, the captioner folder (save / load);
* ``experiment``: notebook 04's experiment (:class:`CaptioningExperiment`, its goal), the planned
  runs, :func:`run_captioning` (train, caption, score one run) and :func:`run_experiment`;
* ``caption_report``: notebook 04's score tables, goal check, decoding comparison, example figure and
  conclusions;
* ``metrics``: caption metrics (BLEU, METEOR, ROUGE-L, CIDEr, SPICE, S-BERT similarity), corpus
  and per-image, and pairwise scoring for metric studies;
* ``pycoco``: the pycocoevalcap machinery the metrics run on (Java, PTB tokenizer, METEOR process,
  SPICE availability).
"""
