"""Experiments built on the library: ``sweep`` (depth x mixer), ``stability`` (learning rate x
depth, the largest stable learning rate per mixer), ``behc`` (BE-HC claims).

Each is a ``python -m reference.lab.studies.<name>`` command that trains through
:func:`reference.lab.train.run` and reads runs back only through :mod:`reference.lab.runs`.
"""
