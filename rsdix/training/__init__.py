"""Stage 4, training: one accelerate loop and the CLIP objectives that RSDiX, RS-M-CLIP and the captioner train with.

The loop and its building blocks (model-independent):

* :mod:`~rsdix.training.loop` - :class:`LoopConfig` and :func:`fit` (mixed precision, accumulation,
  clipping, exact resume, the train log, the NaN guard), precision and accelerator helpers;
* :mod:`~rsdix.training.optim` - AdamW parameter groups (no-decay rule, lr multipliers, freezing),
  the cosine schedule with warmup;
* :mod:`~rsdix.training.ema` - :func:`ema_update` and the :class:`EMATeacher` of distillation objectives;
* :mod:`~rsdix.training.objectives` - :class:`Trainee` (student + objective as one module) and
  :class:`SumObjective` (weighted terms);
* :mod:`~rsdix.training.data_order` - the seeded, resumable data order (:class:`BatchPlan`,
  :class:`SeededView`) and the RNG states a checkpoint carries;
* :mod:`~rsdix.training.checkpoints` - atomic checkpoints, :class:`Checkpointer`, the same-run rule
  (:func:`check_same_run`, :func:`retire_stale_run`);
* :mod:`~rsdix.training.distributed` - gathering features across processes (with / without gradient).

CLIP training:

* :mod:`~rsdix.training.losses` - InfoNCE, SigLIP, OT targets (Sinkhorn), the distillation losses;
* :mod:`~rsdix.training.clip_objectives` - :class:`ClipLossConfig` and :class:`ClipObjective` (the five
  methods), :class:`SBertSimilarity`;
* :mod:`~rsdix.training.clip_data` - :class:`ClipDataConfig`, the training dataset;
* :mod:`~rsdix.training.collate` - the batches: :class:`ClipCollate`, :class:`LanguageCollate` (one
  language per step), :class:`ViewsCollate` and DINO's multi-crop views;
* :mod:`~rsdix.training.clip` - :class:`ClipTrainConfig`, :func:`load_clip_config`, :func:`build_model`,
  the one setup every CLIP run uses (:func:`build_setup`), :func:`train_clip` (``rsdix train``) and
  :func:`train_and_save` (a named run saved as a model folder: notebook 03, the studies);
* :mod:`~rsdix.training.dino` - RS-M-CLIP's DINO term (head, loss, EMA teacher).

Experiments built on this machinery live in :mod:`rsdix.studies`.
"""
