"""Criteria scores against values computed by hand on 3x4 matrices (docs/methods.md#pruning-criteria,
docs/methods.md#gradient-and-taylor-scores-match-autograd, docs/methods.md#lamp-ordering)."""

import pytest
import torch

from lightning_compress.pruning.criteria import (
    CRITERIA,
    GradStats,
    Neighbours,
    ScoreInputs,
    compute_scores,
    event_generator,
    gradient_score,
    lamp_score,
    lookahead_neighbours,
    lookahead_score,
    lookahead_scores,
    magnitude_score,
    needs_gradients,
    random_score,
    taylor_score,
)
from lightning_compress.pruning.l0 import keep_probability

DTYPES = [torch.float32, torch.float64]

# |W| is a permutation of 1..12, so every LAMP denominator is a tail sum of k^2
W = [[3.0, -1.0, 12.0, -7.0], [-5.0, 2.0, 9.0, -11.0], [8.0, -4.0, 6.0, 10.0]]
G = [[0.5, -1.0, 0.0, 2.0], [1.0, 0.25, -0.5, 0.0], [-2.0, 1.0, 0.1, -0.3]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_magnitude_and_gradient_scores_are_absolute_values(dtype):
    w, g = torch.tensor(W, dtype=dtype), torch.tensor(G, dtype=dtype)
    assert torch.equal(magnitude_score(w), torch.tensor([[3.0, 1, 12, 7], [5, 2, 9, 11], [8, 4, 6, 10]]))
    expected = torch.tensor([[0.5, 1.0, 0.0, 2.0], [1.0, 0.25, 0.5, 0.0], [2.0, 1.0, 0.1, 0.3]])
    torch.testing.assert_close(gradient_score(g), expected)
    assert gradient_score(g).dtype == torch.float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_taylor_score_is_abs_gradient_times_weight(dtype):
    score = taylor_score(torch.tensor(W, dtype=dtype), torch.tensor(G, dtype=dtype))
    expected = torch.tensor([[1.5, 1.0, 0.0, 14.0], [5.0, 0.5, 4.5, 0.0], [16.0, 4.0, 0.6, 3.0]])
    torch.testing.assert_close(score, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lamp_score_divides_by_the_tail_sum_of_squares(dtype):
    # ascending |w| = 1..12; S(k) = k^2 / sum_{v >= k} v^2, sum_{v=1}^{12} v^2 = 650
    expected = torch.tensor(
        [
            [9 / 645, 1 / 650, 144 / 144, 49 / 559],
            [25 / 620, 4 / 649, 81 / 446, 121 / 265],
            [64 / 510, 16 / 636, 36 / 595, 100 / 365],
        ]
    )
    score = lamp_score(torch.tensor(W, dtype=dtype))
    torch.testing.assert_close(score, expected)
    # docs/methods.md#lamp-ordering: same order as the magnitudes, the largest weight scores exactly 1
    assert torch.equal(torch.argsort(score.flatten()), torch.argsort(torch.tensor(W).abs().flatten()))
    assert score.max() == 1.0


def test_lamp_pruned_entries_score_zero_and_leave_the_denominators():
    score = lamp_score(torch.tensor([[0.0, 1.0, 0.0, -2.0]]))
    torch.testing.assert_close(score, torch.tensor([[0.0, 1 / 5, 0.0, 1.0]]))
    assert torch.equal(lamp_score(torch.zeros(2, 2)), torch.zeros(2, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lookahead_multiplies_incoming_row_norms_and_outgoing_column_norms(dtype):
    w = torch.tensor(W, dtype=dtype)
    previous = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=dtype)  # row norms 5, 1, 1, 0
    following = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=dtype)  # column norms 1, 3, 2
    expected = torch.tensor([[15.0, 1.0, 12.0, 0.0], [75.0, 6.0, 27.0, 0.0], [80.0, 8.0, 12.0, 0.0]])
    torch.testing.assert_close(lookahead_score(w, previous, [following]), expected)
    # several successors: squared column norms add up
    torch.testing.assert_close(lookahead_score(w, previous, [following[:1], following[1:]]), expected)
    # missing neighbours contribute 1
    torch.testing.assert_close(lookahead_score(w), magnitude_score(w))
    torch.testing.assert_close(
        lookahead_score(w, following=[following]), torch.tensor([[3.0, 1, 12, 7], [15, 6, 27, 33], [16, 8, 12, 20]])
    )


def test_lookahead_neighbours_follow_the_bert_block():
    parts = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ]
    names = [f"model.bert.encoder.layer.{i}.{part}.weight" for i in (0, 1) for part in parts]
    neighbours = lookahead_neighbours(names)

    def n(i, part):
        return f"model.bert.encoder.layer.{i}.{part}.weight"

    assert neighbours[n(0, "attention.self.query")] == Neighbours(None, ())
    assert neighbours[n(0, "attention.self.key")] == Neighbours(None, ())
    assert neighbours[n(0, "attention.self.value")] == Neighbours(None, (n(0, "attention.output.dense"),))
    assert neighbours[n(0, "attention.output.dense")] == Neighbours(n(0, "attention.self.value"), ())
    assert neighbours[n(0, "intermediate.dense")] == Neighbours(None, (n(0, "output.dense"),))
    assert neighbours[n(0, "output.dense")] == Neighbours(
        n(0, "intermediate.dense"), tuple(n(1, f"attention.self.{p}") for p in ("query", "key", "value"))
    )
    assert neighbours[n(1, "output.dense")] == Neighbours(n(1, "intermediate.dense"), ())  # last layer
    # an untargeted neighbour is missing (factor 1); unknown layouts get no neighbours
    partial = lookahead_neighbours([n(0, "attention.output.dense"), "head.weight"])
    assert partial == {n(0, "attention.output.dense"): Neighbours(None, ()), "head.weight": Neighbours(None, ())}


def test_lookahead_scores_use_the_neighbour_weights():
    value = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    dense = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    weights = {"e.layer.0.attention.self.value.weight": value, "e.layer.0.attention.output.dense.weight": dense}
    scores = lookahead_scores(weights)
    # value: outgoing = columns of dense: norms sqrt(5), sqrt(1.25); dense: incoming = rows of value: 5, 2
    torch.testing.assert_close(
        scores["e.layer.0.attention.self.value.weight"], value * torch.tensor([[5**0.5], [1.25**0.5]])
    )
    torch.testing.assert_close(
        scores["e.layer.0.attention.output.dense.weight"], torch.tensor([[5.0, 2.0], [10.0, 1.0]])
    )


def test_random_scores_depend_only_on_seed_and_event():
    w = torch.zeros(3, 4)
    a = random_score(w, event_generator(7, 2))
    assert torch.equal(a, random_score(w, event_generator(7, 2)))
    assert not torch.equal(a, random_score(w, event_generator(7, 3)))
    assert not torch.equal(a, random_score(w, event_generator(8, 2)))
    assert a.shape == (3, 4) and bool(((a >= 0) & (a < 1)).all())


def test_global_random_draws_every_target_from_one_generator():
    weights = {"a": torch.zeros(3, 4), "b": torch.zeros(2, 2)}
    scores = compute_scores("global_random", ScoreInputs(weights, generator=event_generator(0, 0)))
    generator = event_generator(0, 0)
    assert torch.equal(scores["a"], torch.rand(3, 4, generator=generator))
    assert torch.equal(scores["b"], torch.rand(2, 2, generator=generator))


def test_every_criterion_name_dispatches_to_its_score():
    w, g = torch.tensor(W), torch.tensor(G)
    log_alpha = torch.tensor(W) / 10

    def inputs():  # a fresh generator per criterion
        return ScoreInputs(
            {"w": w}, grad_stats={"w": GradStats(g, 3)}, generator=event_generator(0, 0), log_alphas={"w": log_alpha}
        )

    expected = {
        "magnitude": magnitude_score(w),
        "global_magnitude": magnitude_score(w),
        "random": random_score(w, event_generator(0, 0)),
        "global_random": random_score(w, event_generator(0, 0)),
        "gradient": gradient_score(g),
        "taylor": taylor_score(w, g),
        "lamp": lamp_score(w),
        "lookahead": magnitude_score(w),  # no neighbours
        "l0": keep_probability(log_alpha),
        "l1": magnitude_score(w),
    }
    assert set(expected) == set(CRITERIA)
    for name, score in expected.items():
        torch.testing.assert_close(compute_scores(name, inputs())["w"], score, msg=name)
    assert [name for name in CRITERIA if needs_gradients(name)] == ["gradient", "taylor"]
    assert {name for name, c in CRITERIA.items() if c.scope == "global"} == {
        "global_magnitude",
        "global_random",
        "lamp",
    }


class NegativeTaylor:
    def score(self, name, weight, grad_stats):
        return -(weight * grad_stats.grad_sum) / grad_stats.steps


def test_custom_criterion_object_gets_name_weight_and_grad_stats():
    w, g = torch.tensor(W), torch.tensor(G)
    scores = compute_scores(NegativeTaylor(), ScoreInputs({"w": w}, grad_stats={"w": GradStats(g, 2)}))
    torch.testing.assert_close(scores["w"], -(w * g) / 2)
    assert needs_gradients(NegativeTaylor())

    class Magnitude:
        needs_gradients = False

        def score(self, name, weight, grad_stats):
            assert grad_stats is None
            return weight.abs()

    assert not needs_gradients(Magnitude())
    torch.testing.assert_close(compute_scores(Magnitude(), ScoreInputs({"w": w}))["w"], w.abs())


def test_custom_criterion_with_a_wrong_shape_is_rejected():
    class Flat:
        def score(self, name, weight, grad_stats):
            return weight.flatten()

    with pytest.raises(
        ValueError, match=r"Flat.score\('w', ...\) returned \(12,\): expected a tensor shaped like the weight, \(3, 4\)"
    ):
        compute_scores(Flat(), ScoreInputs({"w": torch.tensor(W)}))
