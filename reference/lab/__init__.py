"""``reference.lab``: the laboratory that shows the model (:mod:`reference`) at depth.

    train.py          the trainer (any mixer, any depth, one process or DDP); ``python -m reference.train``
    schedule.py       the learning-rate schedules and the optimizer
    runs.py           the run's Config and its folder: the one module that writes and reads it
    run_plots.py      a run's curves (PNG) and TensorBoard scalars
    data.py           the tasks: a char-level LM on a bundled corpus (corpus/) and synthetic tasks
    quantization.py   INT8 mixing experiments
    studies/          the depth sweep, the stability study and the BE-HC study (python -m reference.lab.studies.*)

It imports the model; nothing in the model imports it (``tests/test_layering.py``).
"""
