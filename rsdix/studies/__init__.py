"""Stage 6, studies: the experiments built on training, captioning and evaluation, one home each.

* :mod:`~rsdix.studies.methods`: notebook 03's method comparison (InfoNCE, RSDiX-CLIP, S-BERT
  teacher, SigLIP, DINO; the best trained longer), config area ``methods``;
* :mod:`~rsdix.studies.efficiency`: the data-efficiency study (does self-distillation need less
  data?), ``rsdix study efficiency``, config area ``efficiency``, ``figures/study``;
* :mod:`~rsdix.studies.caption_metrics`: notebook 06's caption-metric study (n-gram vs semantic
  metrics), config area ``caption_metrics``.

``rsdix study efficiency|methods|caption-metrics`` runs each.
"""
