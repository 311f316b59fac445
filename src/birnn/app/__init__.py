"""The task layer: what ``birnn train`` and :func:`birnn.fit` do with the layer library — tasks
(:mod:`.tasks`: one Task per kind of run), a training run from start to end (:mod:`.runs`),
trained models in Python (:mod:`.pretrained`), the run's options and configuration
(:mod:`.run_options`, :mod:`.config`), reports and plots, export, and the command line
(:mod:`.flags`, :mod:`.cli`). Data, models and the training loop it builds on are
:mod:`birnn.data`, :mod:`birnn.models` and :mod:`birnn.train`."""
