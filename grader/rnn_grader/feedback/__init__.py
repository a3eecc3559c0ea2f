"""What students and instructors read about a submission, safe and offline.

:mod:`~rnn_grader.feedback.sanitize` makes student-authored Markdown, HTML and outputs
inert wherever nbgrader renders a notebook (formgrader, ``generate_feedback``);
:mod:`~rnn_grader.feedback.messages` words a blank answer as "not implemented yet";
:mod:`~rnn_grader.feedback.exporter` writes the self-contained feedback page (MathJax
inlined, messages wrapped). ``nbgrader_config.py`` installs all three.
"""
