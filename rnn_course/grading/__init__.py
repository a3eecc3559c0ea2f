"""Autograding of the assignments.

Trusted side: :mod:`~rnn_course.grading.cases` (inputs), :mod:`~rnn_course.grading.expected`
(reference outputs from :mod:`rnn_course.reference`), :mod:`~rnn_course.grading.compare`
(messages with hints). :mod:`~rnn_course.grading.drivers` calls the student's functions and
is self-contained NumPy, so it can run in another process. :func:`check` is what the
notebooks' test cells call; :mod:`~rnn_course.grading.gradcheck` helps students test
their gradients.
"""

from rnn_course.grading.check import check
from rnn_course.grading.gradcheck import numerical_gradient, relative_error

__all__ = ["check", "numerical_gradient", "relative_error"]
