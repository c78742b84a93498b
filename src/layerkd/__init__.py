"""layerkd: intermediate-layer knowledge distillation for text classifiers.

The public surface is small:

* :mod:`layerkd.tasks`, :mod:`layerkd.data`, :mod:`layerkd.metrics` — tasks, readers, metrics;
* :mod:`layerkd.models` — every model (Hugging Face encoder, BiLSTM, CNN) produces a
  :class:`~layerkd.models.trace.Trace`;
* :mod:`layerkd.objectives` — one module per distillation method, each consuming Traces;
* :mod:`layerkd.recipe`, :mod:`layerkd.trainer`, :mod:`layerkd.pipeline` — the one training loop;
* :mod:`layerkd.cli` — the ``layerkd`` command.
"""

__version__ = "0.1.0"
