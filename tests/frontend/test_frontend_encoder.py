"""The encoder against a straightforward re-computation of docs/method.md §2 on real images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scfront.dictionary.core import Dictionary
from scfront.errors import CheckpointError, ConfigError, InputError
from scfront.frontend import BPDA, Encoder
from scfront.frontend.encoder import RANGE_TOLERANCE, top_indices

EPS = 8 / 255


def naive_codes(x: torch.Tensor, atoms: torch.Tensor, stride: int, top_t: int, jump: float) -> torch.Tensor:
    """conv → per location: sort |z|, keep T → ternary at j·‖d‖₁, written as plain loops."""
    z = F.conv2d(x, atoms, stride=stride)
    l1 = atoms.abs().sum(dim=(1, 2, 3))
    out = torch.zeros_like(z)
    batch, _, height, width = z.shape
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                column = z[b, :, i, j]
                order = torch.sort(column.abs(), descending=True, stable=True).indices[:top_t]
                for k in order.tolist():
                    u = column[k] / l1[k]
                    if u.abs() > jump:
                        out[b, k, i, j] = l1[k] if u > 0 else -l1[k]
    return out


def test_codes_equal_naive_computation_on_cifar(cifar_dictionary: Dictionary, cifar_images: torch.Tensor) -> None:
    images = cifar_images[::3]  # 4 classes: the loops of the reference are slow
    encoder = Encoder(cifar_dictionary)
    codes = encoder(images)
    expected = naive_codes(images, cifar_dictionary.atoms, 2, 15, 3 * EPS)
    assert codes.shape == (4, 500, 15, 15)
    assert torch.equal(codes, expected)
    # the same codes when the encoder keeps extra slots for gradients (autograd on)
    x = images.clone().requires_grad_()
    assert torch.equal(encoder(x).detach(), expected)


def test_codes_are_sparse_and_ternary(cifar_dictionary: Dictionary, cifar_images: torch.Tensor) -> None:
    codes = Encoder(cifar_dictionary)(cifar_images)
    nonzero = (codes != 0).sum(dim=1)
    assert int(nonzero.max()) <= 15
    assert int(nonzero.sum()) > 0
    l1 = cifar_dictionary.l1_norms.view(1, -1, 1, 1).expand_as(codes)
    assert torch.all((codes == 0) | (codes == l1) | (codes == -l1))


def test_without_top_t_or_activation(cifar_dictionary: Dictionary, cifar_images: torch.Tensor) -> None:
    x = cifar_images[:3]
    z = F.conv2d(x, cifar_dictionary.atoms, stride=2)
    assert torch.equal(Encoder(cifar_dictionary, top_t=None, activation=False)(x), z)
    kept = Encoder(cifar_dictionary, top_t=15, activation=False)(x)
    assert int((kept != 0).sum(dim=1).max()) <= 15
    mask = kept != 0
    assert torch.equal(kept[mask], z[mask])
    # every kept |z| is at least as large as every dropped one, per location
    smallest_kept = torch.where(mask, z.abs(), torch.inf).amin(dim=1)
    largest_dropped = torch.where(mask, -torch.inf, z.abs()).amax(dim=1)
    assert torch.all(smallest_kept >= largest_dropped)
    dense = Encoder(cifar_dictionary, top_t=None)(x)
    l1 = cifar_dictionary.l1_norms.view(1, -1, 1, 1)
    assert torch.equal(dense, torch.where((z / l1).abs() > 3 * EPS, torch.sign(z) * l1, torch.zeros(())))


def test_noise_follows_gamma_and_generator(small_dictionary: Dictionary) -> None:
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    plain = Encoder(small_dictionary, top_t=None, activation=False)
    noisy = Encoder(small_dictionary, top_t=None, activation=False, noise_gamma_train=100.0,
                    noise_gamma_test=0.0, seed=5)
    noisy.eval()
    assert torch.equal(noisy(x), plain(x))  # γ_test = 0
    noisy.train()
    first = noisy(x) - plain(x)
    again = Encoder(small_dictionary, top_t=None, activation=False, noise_gamma_train=100.0, seed=5)
    assert torch.allclose(again(x) - plain(x), first, atol=1e-6)  # same seed, same noise
    # scale: the noise of each (sample, atom) map has L1 norm γ·ε_a·‖d_k‖₁
    l1 = small_dictionary.l1_norms
    assert torch.allclose(first.abs().sum(dim=(2, 3)), (100 * EPS * l1).expand(2, -1), rtol=1e-3)
    assert float(first.min()) < 0 < float(first.max())
    state = torch.random.get_rng_state()
    noisy(x)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_dropout_drops_kept_coefficients_without_rescaling(cifar_dictionary: Dictionary,
                                                            cifar_images: torch.Tensor) -> None:
    full = Encoder(cifar_dictionary)(cifar_images)
    dropped_encoder = Encoder(cifar_dictionary, dropout_p=0.5, seed=1)
    dropped_encoder.eval()  # randomised in eval mode too
    dropped = dropped_encoder(cifar_images)
    survived = dropped != 0
    assert torch.equal(dropped[survived], full[survived])  # no rescaling
    fraction = survived.sum() / (full != 0).sum()
    assert 0.4 < float(fraction) < 0.6
    assert not torch.equal(dropped_encoder(cifar_images), dropped)


def test_learnable_dictionary_recomputes_l1(small_dictionary: Dictionary) -> None:
    encoder = Encoder(small_dictionary, top_t=3, learnable=True)
    assert isinstance(encoder.atoms, torch.nn.Parameter)
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    encoder(x).sum().backward()
    assert encoder.atoms.grad is not None and float(encoder.atoms.grad.abs().sum()) > 0
    with torch.no_grad():
        encoder.atoms.mul_(2.0)
    values = set(encoder(x).abs().unique().tolist()) - {0.0}
    assert values and values <= set((2 * small_dictionary.l1_norms).tolist())


def test_state_dict_holds_atoms_and_rejects_mismatch(small_dictionary: Dictionary) -> None:
    encoder = Encoder(small_dictionary, top_t=3)
    state = encoder.state_dict()
    assert torch.equal(state["atoms"], small_dictionary.atoms)
    other = Encoder(Dictionary(torch.randn(5, 3, 2, 2)), top_t=3)
    with pytest.raises(CheckpointError, match="atoms"):
        other.load_state_dict(state)


@pytest.mark.parametrize("bad, message", [
    (torch.rand(3, 6, 6), "batch, 3, height, width"),
    (torch.rand(1, 1, 6, 6), "batch, 3, height, width"),
    (torch.rand(1, 3, 1, 6), "smaller than"),
    (torch.rand(1, 3, 6, 6) * 2, r"\[0, 1\]"),
    (torch.full((1, 3, 6, 6), float("nan")), "NaN"),
    (torch.zeros(1, 3, 6, 6, dtype=torch.uint8), "float"),
])
def test_bad_input_is_one_clear_error(small_dictionary: Dictionary, bad: torch.Tensor, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Encoder(small_dictionary, top_t=3)(bad)


def test_range_tolerance_accepts_rounding_and_rejects_more(small_dictionary: Dictionary) -> None:
    """Attacks may leave [0, 1] by float rounding (accepted); twice the tolerance is an error."""
    encoder = Encoder(small_dictionary, top_t=3)
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for value in (1.0 + RANGE_TOLERANCE / 2, -RANGE_TOLERANCE / 2):
        rounded = x.clone()
        rounded[0, 0, 0, 0] = value
        assert encoder.double()(rounded).shape == (1, 8, 3, 3)
    for value in (1.0 + 2 * RANGE_TOLERANCE, -2 * RANGE_TOLERANCE):
        outside = x.clone()
        outside[0, 0, 0, 0] = value
        with pytest.raises(InputError, match=r"\[0, 1\]"):
            encoder(outside)


@pytest.mark.parametrize("kwargs, message", [
    ({"top_t": 9}, "top_t"),
    ({"top_t": 0}, "top_t"),
    ({"stride": 3}, "stride"),
    ({"dropout_p": 1.0}, "dropout_p"),
    ({"assumed_eps": 0.0}, "assumed_eps"),
    ({"beta": float("nan")}, "beta"),
    ({"bpda": "top_u"}, "BPDA"),
])
def test_bad_settings_are_config_errors(small_dictionary: Dictionary, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Encoder(small_dictionary, **{"top_t": 3, **kwargs})


def test_bpda_rule_sets_the_slots_that_carry_gradient(small_dictionary: Dictionary) -> None:
    """Under autograd the slots are the top-max(T, U) atoms; the identity rule (U = 0) keeps all."""
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    expected = {0: small_dictionary.n_atoms, 2: 3, 5: 5, 30: small_dictionary.n_atoms}
    for top_u, slots in expected.items():
        encoder = Encoder(small_dictionary, top_t=3, bpda=BPDA(top_u=top_u))
        assert encoder.sparse_codes(x).slots == slots, top_u
        with torch.no_grad():
            assert encoder.sparse_codes(x).slots == 3  # no gradient needed: only the T kept slots


def test_top_indices_breaks_ties_by_lower_index_in_any_layout() -> None:
    row = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 0.0])
    assert top_indices(row, 2).tolist() == [1, 2]
    assert sorted(top_indices(row, 4, boundaries=(2,))[:2].tolist()) == [1, 2]
    g = torch.Generator().manual_seed(0)
    mags = torch.randint(0, 6, (3, 40, 5, 5), generator=g).float()  # many exact ties
    last = top_indices(mags.permute(0, 2, 3, 1).contiguous(), 7, dim=-1, boundaries=(3,))
    first = top_indices(mags, 7, dim=1, boundaries=(3,))
    assert torch.equal(last.sort(-1).values, first.permute(0, 2, 3, 1).sort(-1).values)
    assert torch.equal(last[..., :3].sort(-1).values, first.permute(0, 2, 3, 1)[..., :3].sort(-1).values)
    # the set is the stable-sort prefix
    expected = torch.sort(mags, dim=1, descending=True, stable=True).indices[:, :7]
    assert torch.equal(first.sort(1).values, expected.sort(1).values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_indices_integer_path_matches_the_float_selection(dtype) -> None:
    from scfront.frontend.encoder import _order_preserving_bits

    g = torch.Generator().manual_seed(3)
    mags = torch.rand(6, 50, 4, 4, generator=g, dtype=dtype)
    mags[0, :5] = 0.5  # exact ties at the boundaries
    mags[1, :3] = float("inf")
    assert _order_preserving_bits(mags).dtype in (torch.int32, torch.int64)
    for dim, x in ((1, mags), (-1, mags.permute(0, 2, 3, 1))):  # strided and contiguous rows
        got = top_indices(x, 9, dim=dim, boundaries=(4,))
        expected = torch.sort(x, dim=dim, descending=True, stable=True).indices.narrow(dim, 0, 9)
        assert torch.equal(got.narrow(dim, 0, 4).sort(dim).values, expected.narrow(dim, 0, 4).sort(dim).values)
        assert torch.equal(got.sort(dim).values, expected.sort(dim).values)
    # negative values, -0.0 and NaN keep the float path (their bit patterns do not order)
    for bad in (-1.0, -0.0, float("nan")):
        x = mags.clone()
        x[2, 7, 1, 1] = bad
        assert _order_preserving_bits(x).dtype == dtype
    signed = torch.tensor([[-3.0, 2.0, -1.0, 0.5]])
    assert top_indices(signed, 2)[0].tolist() == [1, 3]


def test_correlate_is_conv2d_and_the_precision_flag_is_restored():
    from scfront.frontend.encoder import correlate, ieee_fp32_convolutions

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=gen)
    atoms = torch.randn(5, 3, 4, 4, generator=gen)
    assert torch.equal(correlate(x, atoms, 2), torch.nn.functional.conv2d(x, atoms, stride=2))
    conv = getattr(torch.backends.cudnn, "conv", None)
    read = ((lambda: conv.fp32_precision) if conv is not None and hasattr(conv, "fp32_precision")
            else (lambda: torch.backends.cudnn.allow_tf32))
    before = read()
    with ieee_fp32_convolutions():
        inside = read()
    assert inside in ("ieee", False) and read() == before
    with pytest.raises(ValueError):
        with ieee_fp32_convolutions():
            raise ValueError("restored even on error")
    assert read() == before
