"""The learned similarity space: no degenerate embeddings, a bounded similarity."""

import torch

from aeep_core.data import load_pool
from aeep_core.learning import model as model_module
from aeep_core.learning.model import PairwiseCNN
from aeep_core.learning.training import TrainConfig, score, train
from aeep_core.sequences.model import SequenceCNN


def _assert_non_degenerate(phi: torch.Tensor) -> None:
    norms = phi.norm(dim=1)
    assert (norms > 0.05 * norms.median()).all(), "a row of phi is (nearly) zero: similar to nothing"
    # a post-ReLU layer zeroes about half its units at initialisation and more as it trains
    assert (phi == 0).float().mean() < 0.01


def test_image_embedding_has_no_zero_rows_after_pair_training(image_folder):
    pool = load_pool(image_folder)
    torch.manual_seed(0)
    model = PairwiseCNN(1, 28, pool.n_classes)
    _, before = score(model, pool.inputs, torch.device("cpu"))
    _assert_non_degenerate(torch.from_numpy(before))
    train(model, pool.inputs[:40], pool.labels[:40], TrainConfig(min_steps=80, max_steps=80), torch.device("cpu"), seed=0)
    _, after = score(model, pool.inputs, torch.device("cpu"))
    _assert_non_degenerate(torch.from_numpy(after))


def test_sequence_embedding_is_not_rectified():
    torch.manual_seed(0)
    model = SequenceCNN(10, 16, 2).eval()
    with torch.no_grad():
        _, phi = model(torch.randn(64, 16, 10))
    _assert_non_degenerate(phi)


def test_similarity_is_bounded_and_orders_like_the_cosine():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [3.0, 0.1]])
    s = model_module.similarity_matrix(a, a)
    assert (s >= 0).all() and (s <= 1 + 1e-6).all()
    assert torch.isclose(s[0, 2], torch.tensor(0.0), atol=1e-6)  # opposite
    assert torch.isclose(s[0, 1], torch.tensor(0.5))  # orthogonal
    assert s[0, 3] > s[0, 1] > s[0, 2]


def test_halving_pool_is_max_pool_exactly_in_inference_and_in_training():
    torch.manual_seed(0)
    # ties on purpose: a blank background gives equal values in a window
    x = torch.relu(torch.randn(6, 3, 9, 11)).round(decimals=1)
    reference, halving = torch.nn.MaxPool2d(2), model_module.HalvingMaxPool()
    with torch.inference_mode():
        assert torch.equal(halving(x), reference(x))  # odd sizes: the last row and column dropped
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(6, 3, 4, 5)
    (halving(a) * weights).sum().backward()
    (reference(b) * weights).sum().backward()
    assert torch.equal(a.grad, b.grad)  # a tie's gradient goes to one input, as MaxPool2d's


def test_image_scores_match_a_max_pool_network():
    torch.manual_seed(3)
    model = PairwiseCNN(1, 28, 10)
    plain = PairwiseCNN(1, 28, 10)
    plain.load_state_dict(model.state_dict())
    plain.features[2], plain.features[5] = torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(2)
    images = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    images[:100, :, :14] = 0  # blank halves
    (probs, phi), (plain_probs, plain_phi) = score(model, images, "cpu"), score(plain, images, "cpu")
    assert (probs == plain_probs).all() and (phi == plain_phi).all()
