"""The agreement grammar: determinism per seed, labels and statistics recomputed from words."""

from __future__ import annotations

import random

import pytest
import torch

from rnn_course.language.agreement import (
    NOUN_NUMBER,
    NOUNS,
    PREPOSITIONS,
    VERBS,
    VOCAB,
    WORD_TO_ID,
    agreement_batches,
    agreement_dataset,
    attractor_test_set,
    decode,
    generate_sentence,
)

VERB_NUMBER = {w: n for pair in VERBS for n, w in enumerate(pair)}


def test_same_seed_same_data_other_seed_differs() -> None:
    a = agreement_dataset(300, seed=5)
    b = agreement_dataset(300, seed=5)
    c = agreement_dataset(300, seed=6)
    assert a.sentences == b.sentences
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.labels, b.labels)
    assert a.sentences != c.sentences


def _check_sentence(s) -> None:
    """Recompute every annotation of ``s`` from its words and the grammar's rules."""
    words = list(s.words)
    # the embedding clauses are blocks "the N V that", each verb agreeing with its noun
    for c in range(s.clauses):
        the, noun, verb, that = words[4 * c : 4 * c + 4]
        assert (the, that) == ("the", "that")
        assert NOUN_NUMBER[noun] == VERB_NUMBER[verb]
    assert s.subject_index == 4 * s.clauses + 1
    assert words[s.subject_index - 1] == "the"
    assert s.label == NOUN_NUMBER[words[s.subject_index]]
    # walk the modifiers: each verb agrees with the noun its rule names
    i, previous, nouns = s.subject_index + 1, s.label, []
    for kind in s.modifiers:
        if kind == "pp":
            prep, the, noun = words[i : i + 3]
            assert prep in PREPOSITIONS and the == "the"
            i += 3
        elif kind == "subject_rc":
            that, verb, the, noun = words[i : i + 4]
            assert (that, the) == ("that", "the")
            assert VERB_NUMBER[verb] == previous
            i += 4
        else:
            that, the, noun, verb = words[i : i + 4]
            assert (that, the) == ("that", "the")
            assert VERB_NUMBER[verb] == NOUN_NUMBER[noun]
            i += 4
        previous = NOUN_NUMBER[noun]
        nouns.append(noun)
    assert i == len(words)
    assert s.attractors == sum(NOUN_NUMBER[n] != s.label for n in nouns)
    assert s.distance == len(words) - 1 - s.subject_index
    last_noun = nouns[-1] if nouns else words[s.subject_index]
    assert s.nearest_disagrees == (NOUN_NUMBER[last_noun] != s.label)
    assert s.text.endswith(" is" if s.label == 0 else " are")


def test_labels_and_annotations_follow_from_the_words() -> None:
    data = agreement_dataset(500, seed=3, distribution="uniform", attractor_prob=0.5)
    for s in data.sentences:
        _check_sentence(s)
    assert {s.clauses for s in data.sentences} == {0, 1, 2}
    assert {len(s.modifiers) for s in data.sentences} == {0, 1, 2, 3, 4}


def test_tensors_encode_the_sentences() -> None:
    data = agreement_dataset(50, seed=1)
    for row, s in enumerate(data.sentences):
        L = int(data.lengths[row])
        assert len(s.words) == L
        assert decode(data.tokens[row]) == " ".join(s.words)
        assert data.tokens[row, L:].eq(0).all()
        assert int(data.labels[row]) == s.label
        assert int(data.attractors[row]) == s.attractors
        assert bool(data.nearest_disagrees[row]) == s.nearest_disagrees
    assert data.tokens.shape[1] == int(data.lengths.max())


def test_vocabulary_covers_the_grammar() -> None:
    assert VOCAB[0] == "<pad>" and len(set(VOCAB)) == len(VOCAB)
    for word in ("the", "that", *PREPOSITIONS, *(w for p in NOUNS for w in p)):
        assert VOCAB[WORD_TO_ID[word]] == word
    assert "is" not in WORD_TO_ID and "are" not in WORD_TO_ID  # the answer is never input


def test_uniform_distribution_is_stratified() -> None:
    data = agreement_dataset(250, seed=0, distribution="uniform", max_modifiers=4)
    counts = [sum(len(s.modifiers) == m for s in data.sentences) for m in range(5)]
    assert counts == [50] * 5


def test_natural_distribution_favours_short_subjects() -> None:
    data = agreement_dataset(6000, seed=0, distribution="natural", max_modifiers=4)
    share = [sum(len(s.modifiers) == m for s in data.sentences) / 6000 for m in range(5)]
    expected = [2.0**-m / sum(2.0**-k for k in range(5)) for m in range(5)]
    assert share == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_attractor_probability_extremes(prob: float) -> None:
    data = agreement_dataset(200, seed=2, attractor_prob=prob, max_clauses=0)
    for s in data.sentences:
        assert s.attractors == (len(s.modifiers) if prob == 1.0 else 0)
        assert s.nearest_disagrees == (prob == 1.0 and len(s.modifiers) > 0)


def test_generate_sentence_uses_only_its_rng() -> None:
    a = generate_sentence(random.Random(9), 3, 1)
    b = generate_sentence(random.Random(9), 3, 1)
    assert a == b and len(a.modifiers) == 3 and a.clauses == 1


def test_batches_are_deterministic_and_cut_to_the_longest() -> None:
    data = agreement_dataset(400, seed=4)
    make = agreement_batches(data, 16)
    a, b, c = (
        make(7, torch.device("cpu")),
        make(7, torch.device("cpu")),
        make(8, torch.device("cpu")),
    )
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)
    assert a.inputs.shape[0] == 16 and a.inputs.dtype == torch.int64
    assert a.inputs[:, -1].ne(0).any()  # some row fills the last column


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="distribution"):
        agreement_dataset(10, seed=0, distribution="zipf")
    with pytest.raises(ValueError, match="attractor_prob"):
        agreement_dataset(10, seed=0, attractor_prob=1.5)
    with pytest.raises(ValueError, match="max_clauses"):
        agreement_dataset(10, seed=0, max_clauses=-1)


def test_attractor_test_set_fills_every_count() -> None:
    data = attractor_test_set(30, seed=4)
    counts = torch.bincount(data.attractors, minlength=5)
    assert counts.tolist() == [30] * 5
    again = attractor_test_set(30, seed=4)
    assert torch.equal(data.tokens, again.tokens)
    assert bool(data.nearest_disagrees[data.attractors == 0].any()) is False
    assert bool(data.nearest_disagrees[data.attractors == 2].any())
    assert bool((~data.nearest_disagrees[data.attractors == 2]).any())


def test_attractor_test_set_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="max_attractors"):
        attractor_test_set(5, seed=0, max_attractors=5, max_modifiers=4)
