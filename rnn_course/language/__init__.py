"""Language experiments: generated agreement sentences and the book's own prose.

* :mod:`~rnn_course.language.agreement` — a small English-like grammar for subject–verb
  number agreement across attractors (Linzen et al. 2016), reproducible from a seed;
* :mod:`~rnn_course.language.corpus` — the frozen character corpus, its vocabulary and
  stateful batches for truncated backpropagation through time;
* :mod:`~rnn_course.language.models` — classifiers and language models built from the
  package's layers, and a bidirectional layer that respects sequence lengths;
* :mod:`~rnn_course.language.training` — training and validation in bits per character;
* :mod:`~rnn_course.language.sampling` — drawing text at a temperature.
"""
