"""What the tests, the claims (``proofs_checks``) and the benchmarks share, below all of them:
seeded case generators (:mod:`.generators`), an independent mpmath oracle for the certificates
(:mod:`.oracle`) and float diagnostics of results (:mod:`.checks`). numpy, scipy and mpmath only."""
