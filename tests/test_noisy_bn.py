"""Tests of bnguide.norms.noisy: the covariate shift of Santurkar et al. 2018, Algorithm 1."""

import dataclasses

import numpy as np
import pytest
import torch

from bnguide.norms.noisy import (
    CovariateShiftNoise,
    NoisyBatchNorm1d,
    NoisyBatchNorm2d,
    covariate_shift_noise,
)

N_MU, N_SIGMA, R_MU, R_SIGMA = 0.5, 1.25, 0.1, 0.1


def _draw_m_and_s(shape, seed, **kw):
    """Recover m and s of one draw: the same generator state gives m on input 0, s + m on 1."""
    zeros = covariate_shift_noise(
        torch.zeros(shape, dtype=torch.float64),
        generator=torch.Generator().manual_seed(seed),
        **kw,
    )
    ones = covariate_shift_noise(
        torch.ones(shape, dtype=torch.float64),
        generator=torch.Generator().manual_seed(seed),
        **kw,
    )
    return zeros, ones - zeros


def test_per_unit_shift_is_uniform_around_a_random_mean():
    m, _ = _draw_m_and_s((20000, 6), seed=0)
    centre = (m.max(0).values + m.min(0).values) / 2  # (C,): mu_t of each unit
    assert bool((centre.abs() <= N_MU + 1e-3).all())
    # U(mu_t - r_mu, mu_t + r_mu): range 2 r_mu, standard deviation 2 r_mu / sqrt(12)
    torch.testing.assert_close(
        m.max(0).values - m.min(0).values,
        torch.full((6,), 2 * R_MU, dtype=torch.float64),
        atol=1e-3,
        rtol=0,
    )
    torch.testing.assert_close(
        m.std(0), torch.full((6,), 2 * R_MU / 12**0.5, dtype=torch.float64), atol=3e-3, rtol=0
    )
    assert centre.std() > 0.05  # units get different means


def test_per_unit_scale_is_gaussian_around_a_random_sigma():
    _, s = _draw_m_and_s((20000, 6), seed=1)
    mean = s.mean(0)  # (C,): sigma_t of each unit
    assert bool(((mean > 1 - 0.01) & (mean < N_SIGMA + 0.01)).all())
    torch.testing.assert_close(
        s.std(0), torch.full((6,), R_SIGMA, dtype=torch.float64), atol=3e-3, rtol=0
    )


def test_distributions_change_from_step_to_step():
    gen = torch.Generator().manual_seed(2)
    zeros = torch.zeros(5000, 8)
    first = covariate_shift_noise(zeros, generator=gen).mean(0)
    second = covariate_shift_noise(zeros, generator=gen).mean(0)
    assert (first - second).abs().max() > 0.1


def test_constants_are_respected():
    m, s = _draw_m_and_s((5000, 4), seed=3, n_mu=0.0, n_sigma=1.0, r_mu=0.0, r_sigma=0.0)
    torch.testing.assert_close(m, torch.zeros_like(m))
    torch.testing.assert_close(s, torch.ones_like(s))


def test_gradient_is_the_random_scale():
    x = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(30, 5, dtype=torch.float64)
    out = covariate_shift_noise(x, generator=torch.Generator().manual_seed(4))
    (grad,) = torch.autograd.grad(out, x, upstream)
    _, s = _draw_m_and_s((30, 5), seed=4)
    torch.testing.assert_close(grad, upstream * s)


def test_convolutions_share_the_unit_distribution_over_positions():
    m, _ = _draw_m_and_s((50, 3, 8, 8), seed=5)
    per_channel = m.transpose(0, 1).reshape(3, -1)  # (C, N*H*W)
    spread = per_channel.max(1).values - per_channel.min(1).values
    assert bool((spread <= 2 * R_MU + 1e-12).all())
    assert (per_channel.mean(1).max() - per_channel.mean(1).min()) > 0.0


def test_layer_is_identity_in_eval_mode():
    layer = CovariateShiftNoise().eval()
    x = torch.randn(4, 3)
    assert layer(x) is x
    assert not torch.equal(layer.train()(x), x)


def test_noisy_batch_norm_is_batch_norm_plus_noise():
    torch.manual_seed(0)
    noisy = NoisyBatchNorm1d(5).double()
    plain = torch.nn.BatchNorm1d(5).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    out = noisy(x)
    expected = plain(x)
    diff = out - expected
    # what is left is s * bn + m with s close to [1, 1.25] and m within [-0.6, 0.6]
    assert diff.abs().max() > 0.01
    assert bool((diff.abs() <= (N_SIGMA - 1 + 4 * R_SIGMA) * expected.abs() + N_MU + R_MU).all())
    torch.testing.assert_close(noisy.running_mean, plain.running_mean)
    noisy.eval()
    plain.eval()
    torch.testing.assert_close(noisy(x), plain(x))


def test_noisy_batch_norm_state_dict_loads_into_torch():
    noisy = NoisyBatchNorm2d(3, momentum=0.2)
    noisy(torch.randn(4, 3, 5, 5))
    plain = torch.nn.BatchNorm2d(3, momentum=0.2)
    plain.load_state_dict(noisy.state_dict())
    torch.testing.assert_close(plain.running_var, noisy.running_var)
    assert noisy.noise.n_mu == N_MU


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_sigma": 0.9}, "n_sigma is the upper end of U"),
        ({"r_mu": -0.1}, "must be >= 0"),
        ({"r_sigma": -1.0}, "must be >= 0"),
        ({"n_mu": -0.5}, "must be >= 0"),
    ],
)
def test_bad_constants_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CovariateShiftNoise(**kwargs)
    with pytest.raises(ValueError, match=message):
        covariate_shift_noise(torch.zeros(2, 2), **kwargs)


def test_one_dimensional_input_is_rejected():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C\)"):
        covariate_shift_noise(torch.zeros(5))


def _small_config(**changes):
    """A run of seconds: 2 hidden layers of 8, 4 steps, 32 probe examples, 3 units."""
    from bnguide.experiments import santurkar_noisy_bn as exp

    small = dict(hidden=(8, 8), steps=4, eval_every=2, n_eval=50, probe_layer=1,
                 snapshot_every=2, n_probe=32, n_units=3)  # fmt: skip
    return exp.Config(**{**small, **changes})


def test_experiment_runs_at_small_scale():
    from bnguide.experiments import santurkar_noisy_bn as exp

    cfg = _small_config()
    result = exp.run(cfg)
    assert list(result.train_accuracy) == list(exp.VARIANTS)
    assert result.train_accuracy["batch"].shape == (1, 3)
    assert result.units["noisy-batch"].shape == (1, 3, 32, 3)
    assert result.shift["none"].shape == (1, 2)
    # at initialisation (beta = 0, gamma = 1) BN's layer inputs are standardized on the probe
    # batch; the noise moves them off
    bn_units = torch.from_numpy(result.units["batch"][0, 0])  # (n_probe, units)
    torch.testing.assert_close(bn_units.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(bn_units.std(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    noisy = torch.from_numpy(result.units["noisy-batch"][0, 0])
    assert float(noisy.mean(0).abs().max()) > 1e-3


def test_experiment_rejects_unknown_variant():
    from bnguide.experiments import santurkar_noisy_bn as exp

    with pytest.raises(ValueError, match="Unknown variants"):
        exp.run(exp.Config(variants=("none", "gn")))


def test_seeds_run_apart_and_combined_equal_one_run_over_all_seeds():
    from bnguide.experiments import santurkar_noisy_bn as exp
    from bnguide.experiments import seed_configs

    cfg = _small_config(seeds=(0, 1))
    together = exp.run(cfg)
    apart = exp.combine(exp.run(c) for c in seed_configs(cfg, (0, 1)))
    assert apart.config == together.config
    for field in ("train_accuracy", "shift", "drift", "units"):
        for v in cfg.variants:
            np.testing.assert_array_equal(getattr(apart, field)[v], getattr(together, field)[v])
    with pytest.raises(ValueError, match="differ only in their seeds"):
        exp.combine([together, exp.run(dataclasses.replace(cfg, steps=2, seeds=(2,)))])
