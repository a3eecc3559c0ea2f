"""A generated English-like language for subject–verb number agreement (Linzen et al. 2016).

A sentence is an optional chain of clauses that embed what follows, "the girls know that",
then a subject noun phrase and its verb, "the writer of the books that the dog likes
**is**". The subject noun phrase is ``the N`` and a chain of modifiers, each attached to
the noun before it:

* a prepositional phrase, ``of the books`` (one new noun);
* a subject relative clause, ``that likes the dog`` (its verb agrees with the noun it
  modifies, then a new noun);
* an object relative clause, ``that the dogs like`` (a new noun, then a verb that agrees
  with that new noun).

The task is Linzen et al.'s *number prediction*: read the words up to the verb and predict
whether it is singular (``is``, label 0) or plural (``are``, label 1), that is the number
of the subject: the noun right after the embedding clauses ``the N V that``, or the first
noun when there are none. The embedding clauses put nouns of random number before the
subject, so "remember the first noun" is not a solution.

An **attractor** is an intervening noun whose number differs from the subject's; the
**distance** is the number of words between the subject noun and its verb. A model that
follows the most recent noun (sequential recency) instead of the subject (syntactic
structure) errs exactly where the nearest noun disagrees.

Sentences come from :class:`random.Random` seeded with ``seed``, so a seed fixes the data.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rnn_course.tasks import Batch
from rnn_course.validation import expect_choice, expect_positive_int

# (singular, plural) pairs; the index in a pair is the number (0 singular, 1 plural)
NOUNS: tuple[tuple[str, str], ...] = (
    ("writer", "writers"),
    ("book", "books"),
    ("author", "authors"),
    ("table", "tables"),
    ("key", "keys"),
    ("cabinet", "cabinets"),
    ("girl", "girls"),
    ("dog", "dogs"),
    ("teacher", "teachers"),
    ("student", "students"),
)
VERBS: tuple[tuple[str, str], ...] = (
    ("likes", "like"),
    ("sees", "see"),
    ("knows", "know"),
    ("finds", "find"),
)
PREPOSITIONS: tuple[str, ...] = ("of", "near", "behind", "with", "on")
MAIN_VERB: tuple[str, str] = ("is", "are")
MODIFIERS: tuple[str, ...] = ("pp", "subject_rc", "object_rc")

PAD = "<pad>"
# index 0 is padding; the rest is every word the grammar can emit before the main verb
VOCAB: tuple[str, ...] = (
    PAD,
    "the",
    "that",
    *PREPOSITIONS,
    *(w for pair in NOUNS for w in pair),
    *(w for pair in VERBS for w in pair),
)
WORD_TO_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
NOUN_NUMBER: dict[str, int] = {w: n for pair in NOUNS for n, w in enumerate(pair)}


@dataclass(frozen=True)
class Sentence:
    """One sentence of the grammar, up to (not including) the main verb.

    Attributes:
        words: the prefix the model reads, ``("the", "writer", "of", "the", "books")``.
        label: the number of the subject and of its verb: 0 singular, 1 plural.
        subject_index: the position of the subject noun in ``words``.
        attractors: intervening nouns whose number differs from the subject's.
        distance: words between the subject noun and the main verb.
        nearest_disagrees: the last noun before the verb has the other number.
        modifiers: the kinds of modifiers, in order (``"pp"``, ``"subject_rc"``, ``"object_rc"``).
        clauses: embedding clauses before the subject (``"the girls know that"``).
    """

    words: tuple[str, ...]
    label: int
    subject_index: int
    attractors: int
    distance: int
    nearest_disagrees: bool
    modifiers: tuple[str, ...]
    clauses: int

    @property
    def text(self) -> str:
        """The whole sentence with its correct main verb, ``"the writer of the books is"``."""
        return " ".join((*self.words, MAIN_VERB[self.label]))


def generate_sentence(
    rng: random.Random, num_modifiers: int, num_clauses: int = 0, attractor_prob: float = 0.5
) -> Sentence:
    """Draw one sentence with ``num_modifiers`` modifiers from ``rng``.

    Args:
        rng: the source of randomness (advanced by the call).
        num_modifiers: how many prepositional phrases and relative clauses follow the subject.
        num_clauses: how many embedding clauses ``the N V that`` precede the subject (their
            nouns have either number with equal probability).
        attractor_prob: the probability that each new noun has the other number.
    """
    words: list[str] = []
    for _ in range(num_clauses):
        number = rng.randrange(2)
        words += ["the", rng.choice(NOUNS)[number], rng.choice(VERBS)[number], "that"]
    label = rng.randrange(2)
    subject_index = len(words) + 1
    words += ["the", rng.choice(NOUNS)[label]]
    previous = label  # number of the noun the next modifier attaches to
    attractors = 0
    kinds = []
    for _ in range(num_modifiers):
        kind = rng.choice(MODIFIERS)
        number = 1 - label if rng.random() < attractor_prob else label
        noun = rng.choice(NOUNS)[number]
        verb = rng.choice(VERBS)
        if kind == "pp":
            words += [rng.choice(PREPOSITIONS), "the", noun]
        elif kind == "subject_rc":  # the verb agrees with the noun the clause modifies
            words += ["that", verb[previous], "the", noun]
        else:  # object relative clause: the verb agrees with the clause's own subject
            words += ["that", "the", noun, verb[number]]
        attractors += number != label
        previous = number
        kinds.append(kind)
    return Sentence(
        words=tuple(words),
        label=label,
        subject_index=subject_index,
        attractors=attractors,
        distance=len(words) - 1 - subject_index,
        nearest_disagrees=previous != label,
        modifiers=tuple(kinds),
        clauses=num_clauses,
    )


def modifier_counts(
    num: int, rng: random.Random, distribution: str, max_modifiers: int
) -> list[int]:
    """How many modifiers each of ``num`` sentences gets.

    ``"natural"`` draws ``m`` with probability proportional to ``2^{-m}`` for
    ``m = 0, …, max_modifiers``, so, as in written text, most subjects stand next to their
    verb; ``"uniform"`` gives every ``m`` the same share (in order, for stratified test
    sets).
    """
    expect_choice("distribution", distribution, ("natural", "uniform"))
    if distribution == "uniform":
        return [i % (max_modifiers + 1) for i in range(num)]
    weights = [2.0**-m for m in range(max_modifiers + 1)]
    return rng.choices(range(max_modifiers + 1), weights=weights, k=num)


@dataclass(frozen=True)
class AgreementData:
    """A tensorized set of sentences.

    Shape:
        - tokens: ``(N, T)`` int64 word ids, padded on the right with 0
        - lengths, labels, attractors, distance: ``(N,)`` int64
        - nearest_disagrees: ``(N,)`` bool
    """

    tokens: Tensor
    lengths: Tensor
    labels: Tensor
    attractors: Tensor
    distance: Tensor
    nearest_disagrees: Tensor
    sentences: tuple[Sentence, ...]

    def __len__(self) -> int:
        return len(self.sentences)


def encode(sentences: list[Sentence] | tuple[Sentence, ...]) -> AgreementData:
    """Turn sentences into padded id tensors (see :class:`AgreementData`)."""
    if not sentences:
        raise ValueError("sentences must not be empty")
    T = max(len(s.words) for s in sentences)
    rows = [[WORD_TO_ID[w] for w in s.words] + [0] * (T - len(s.words)) for s in sentences]
    tokens = torch.tensor(rows, dtype=torch.int64)  # (N, T), right-padded with 0

    def column(values: list[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.int64)

    return AgreementData(
        tokens=tokens,
        lengths=column([len(s.words) for s in sentences]),
        labels=column([s.label for s in sentences]),
        attractors=column([s.attractors for s in sentences]),
        distance=column([s.distance for s in sentences]),
        nearest_disagrees=torch.tensor([s.nearest_disagrees for s in sentences]),
        sentences=tuple(sentences),
    )


def agreement_dataset(
    num: int,
    *,
    seed: int,
    distribution: str = "natural",
    max_modifiers: int = 4,
    max_clauses: int = 2,
    attractor_prob: float = 0.5,
) -> AgreementData:
    """``num`` sentences drawn with ``random.Random(seed)``; the same seed, the same data.

    Args:
        num: number of sentences.
        seed: fixes every choice.
        distribution: ``"natural"`` (few modifiers, like the training data of a corpus) or
            ``"uniform"`` (equally many sentences with 0, 1, … ``max_modifiers`` modifiers).
        max_modifiers: the most modifiers a sentence can have.
        max_clauses: each sentence gets 0 … ``max_clauses`` embedding clauses, uniformly.
        attractor_prob: the probability that a new noun has the other number.
    """
    expect_positive_int("num", num)
    if isinstance(max_modifiers, bool) or not isinstance(max_modifiers, int) or max_modifiers < 0:
        raise ValueError(f"max_modifiers must be a non-negative int, got {max_modifiers!r}")
    if not 0.0 <= attractor_prob <= 1.0:
        raise ValueError(f"attractor_prob must be in [0, 1], got {attractor_prob!r}")
    if isinstance(max_clauses, bool) or not isinstance(max_clauses, int) or max_clauses < 0:
        raise ValueError(f"max_clauses must be a non-negative int, got {max_clauses!r}")
    rng = random.Random(seed)
    counts = modifier_counts(num, rng, distribution, max_modifiers)
    return encode(
        [generate_sentence(rng, m, rng.randint(0, max_clauses), attractor_prob) for m in counts]
    )


def attractor_test_set(
    per_count: int,
    *,
    seed: int,
    max_attractors: int = 4,
    max_modifiers: int = 4,
    max_clauses: int = 1,
    attractor_prob: float = 0.5,
) -> AgreementData:
    """Equally many sentences with 0, 1, … ``max_attractors`` attractors.

    Sentences are drawn as in :func:`agreement_dataset` with ``distribution="uniform"``
    (every number of modifiers up to ``max_modifiers`` equally often) and kept until every
    attractor count has ``per_count`` of them, so that an error rate measured per count
    rests on ``per_count`` sentences even where attractors are rare. Within a count, the
    sentences keep the distribution of modifiers, distances and nearest nouns that the
    drawing gives them.

    Args:
        per_count: sentences per attractor count.
        seed: fixes every choice.
        max_attractors: the largest count (at most ``max_modifiers``).
        max_modifiers, max_clauses, attractor_prob: as for :func:`agreement_dataset`.
    """
    expect_positive_int("per_count", per_count)
    if not 0 <= max_attractors <= max_modifiers:
        raise ValueError(
            f"max_attractors must be in [0, max_modifiers={max_modifiers}], got {max_attractors}"
        )
    if not 0.0 < attractor_prob < 1.0:
        raise ValueError(f"attractor_prob must be in (0, 1), got {attractor_prob!r}")
    rng = random.Random(seed)
    bins: list[list[Sentence]] = [[] for _ in range(max_attractors + 1)]
    drawn = 0
    while any(len(b) < per_count for b in bins):
        sentence = generate_sentence(
            rng, drawn % (max_modifiers + 1), rng.randint(0, max_clauses), attractor_prob
        )
        drawn += 1
        if sentence.attractors <= max_attractors and len(bins[sentence.attractors]) < per_count:
            bins[sentence.attractors].append(sentence)
    return encode([s for b in bins for s in b])


def agreement_batches(data: AgreementData, batch_size: int) -> Callable[[int, torch.device], Batch]:
    """A ``make_batch(seed, device) -> Batch`` for :func:`rnn_course.training.train`.

    Each call draws ``batch_size`` sentences of ``data`` at random (with a generator seeded
    by ``seed``), cut to the longest one: ``Batch(tokens (N, T) int64, labels (N,))``.
    """
    N = expect_positive_int("batch_size", batch_size)

    def make_batch(seed: int, device: torch.device) -> Batch:
        gen = torch.Generator().manual_seed(seed)
        rows = torch.randint(0, len(data), (N,), generator=gen)
        T = int(data.lengths[rows].max())
        return Batch(data.tokens[rows, :T].to(device), data.labels[rows].to(device))

    return make_batch


def decode(tokens: Tensor) -> str:
    """The words of one row of ids, padding dropped."""
    return " ".join(VOCAB[i] for i in tokens.tolist() if i != 0)
