"""Theory beside measurement (docs/theory.md).

* :mod:`~pacsim.theory.curves`: the spectral learning curve of kernel ridge regression
  (Bordelon, Canatar & Pehlevan 2020; Canatar, Bordelon & Pehlevan 2021; Simon et al. 2021);
* :mod:`~pacsim.theory.spectrum`: kernel spectra and target coefficients, estimated from a
  Gram matrix of fresh samples, or exact for dot-product kernels on the hypercube;
* :mod:`~pacsim.theory.oracle`: the linearised-training oracle (the network linearised at its
  initialisation: full-batch gradient descent in closed form, SGD replayed, online SGD in
  expectation; feed-forward nets and the RNN);
* :mod:`~pacsim.theory.run`: ``pacsim theory RUN_DIR``, predictions for every kernel cell of a
  run folder and, through :mod:`~pacsim.theory.oracle_run`, the oracle of every SGD cell that
  has one, written to ``theory.parquet``; :mod:`~pacsim.theory.summary` reads them back.

Only ``curves`` and ``spectrum`` (NumPy and SciPy) are imported with the package; import
``oracle``, ``oracle_run``, ``run`` and ``summary`` by name.
"""

from . import curves, spectrum

__all__ = ["curves", "spectrum"]
