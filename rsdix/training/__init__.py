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
* :mod:`~rsdix.training.clip_data` - :class:`ClipDataConfig`, the training dataset and its collate;
* :mod:`~rsdix.training.clip` - :class:`ClipTrainConfig`, :func:`load_clip_config`, :func:`build_model`,
  :func:`train_clip` (the entry point ``rsdix train`` calls);
* :mod:`~rsdix.training.dino` - RS-M-CLIP's DINO term (multi-crop views, head, loss, EMA teacher);
* :mod:`~rsdix.training.multilingual` - multilingual captions (parallel files, one language per
  step, machine translation);
* :mod:`~rsdix.studies.methods` - notebook 03's study: :class:`MethodsConfig`, :class:`Study`,
  :func:`train_run`, run names, result rows, its tables, figures and conclusions.
"""
