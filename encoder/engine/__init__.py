"""One training core for both stages, on accelerate; each module is one idea.

* ``core``        :class:`~encoder.engine.core.TrainingCore` (accelerator, resume, one optimizer step with
                  rank-agreed skipping, metrics, checkpoints, summary) and :func:`~encoder.engine.core.optimizer_step`
* ``checkpoints`` complete-or-absent checkpoints through accelerate's ``save_state`` / ``load_state``
* ``settings``    the settings a run's weights depend on, compared on resume
* ``batches``     the deterministic global batch order and each process's shard of it
* ``guard``       the non-finite step guard and :class:`~encoder.engine.guard.TrainingError`
* ``metrics``     ``metrics.csv`` + TensorBoard, truncated to the resume step
* ``distributed`` autograd-aware exchanges between processes and global-batch BatchNorm
* ``inference``   :func:`~encoder.engine.inference.encode_dataset`: the encoder over a dataset, in batches

Nothing is imported here, so ``encoder.loss`` can use ``encoder.engine.distributed`` without loading accelerate.
"""
