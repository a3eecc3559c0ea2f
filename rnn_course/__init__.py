"""Reference implementations and tasks for a course on recurrent neural networks.

The layers and cells mirror :mod:`torch.nn` (same arguments, parameter names, shapes and
state-dict keys) so that weights load both ways; everything runs on the CPU by default and
on a GPU when one is present (see :func:`rnn_course.device.default_device`).
"""

from rnn_course.cells import GRUCell, LSTMCell, RNNCell
from rnn_course.clip import clip_grad_norm_, clip_grad_value_
from rnn_course.device import default_device
from rnn_course.layers import GRU, LSTM, RNN

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "clip_grad_norm_",
    "clip_grad_value_",
    "default_device",
]
__version__ = "0.1.0"
