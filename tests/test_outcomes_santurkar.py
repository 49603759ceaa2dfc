"""Outcome tests of the Santurkar et al. (2018) experiments at a reduced scale.

Each test runs an experiment for a few hundred steps on 2 seeds and checks the direction of a
main claim with the claim's own criterion (:mod:`bnguide.claims`), so that a regression shows
up here and not only in the book build (chapters *Why BN works: internal covariate shift* and
*... a smoother landscape*). The book's scale and seeds are checked by the chapters. The noisy-BN
and Figure 1 runs use 12 layers of 32 units instead of 64 (the directions and margins were
checked on seeds 0-3 under the default, AVX2 and AVX-512 kernels).
"""

import dataclasses

import numpy as np
import pytest
import torch

from bnguide import claims
from bnguide.experiments import santurkar_deep_linear as dln
from bnguide.experiments import santurkar_learning_rate as lrx
from bnguide.experiments import santurkar_mlp as mlp
from bnguide.experiments import santurkar_noisy_bn as nb
from bnguide.experiments import seed_configs

SEEDS = (0, 1)
NARROW = (32,) * 12  # the book's depth at half its width


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # small nets: one thread is fastest, and spin-waiting threads crawl on a loaded machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def verdict(claim_id: str, values) -> str:
    return claims.get(claim_id).criterion.verdict(values)


@pytest.fixture(scope="module")
def noisy():
    cfg = nb.Config(
        hidden=NARROW, variants=("none", "batch", "noisy-batch"), steps=400, n_eval=500,
        snapshot_every=100, n_probe=128,
    )  # fmt: skip
    return nb.combine(nb.run(c) for c in seed_configs(cfg, SEEDS))


def test_noisy_bn_trains_faster_than_standard_early(noisy):
    values = nb.accuracy(noisy, "noisy-batch", nb.EARLY_STEPS) - nb.accuracy(
        noisy, "none", nb.EARLY_STEPS
    )
    assert verdict("noisy-bn-vs-standard-early", values) == "reproduced", values


def test_bn_moves_layer_inputs_least(noisy):
    # BN pins each unit's mean and variance; the standard and the noisy networks' inputs move
    # several times more (whether noisy BN's move more than the standard net's depends on the
    # stage of training: the book states it over 1,500 steps, on most seeds)
    shift = {v: s.mean(1) for v, s in noisy.shift.items()}  # (seeds,)
    assert (shift["none"] > 2 * shift["batch"]).all(), shift
    assert (shift["noisy-batch"] > 2 * shift["batch"]).all(), shift


def test_noisy_bn_training_mode_accuracy_is_recorded_with_the_noise_on(noisy):
    # step 0 has no mini-batch yet; the training-mode accuracy of noisy BN is below its
    # eval-mode accuracy at the end (the noise is on in training mode only)
    assert np.isnan(noisy.batch_accuracy["batch"][:, 0]).all()
    end_train = nb.accuracy(noisy, "noisy-batch", "end")
    end_eval = nb.accuracy(noisy, "noisy-batch", "end", field="train_accuracy")
    assert end_train.shape == end_eval.shape == (len(SEEDS),)
    with pytest.raises(ValueError, match="were not evaluated"):
        nb.accuracy(noisy, "batch", 150)
    with pytest.raises(ValueError, match="field must be"):
        nb.accuracy(noisy, "batch", "end", field="test_accuracy")


@pytest.fixture(scope="module")
def mlps():
    # 600 steps probed every 100: a median over 350 steps (probes every 50) leans on the early
    # plateau, where cos(G, G') is near 1; layer 5's larger cos came within 0.01 of the 0.8 line
    # on seed 0 under the AVX2 kernels (over 600 steps: 0.68, 0.70 default, 0.53 AVX-512)
    cfg = mlp.Config(variants=("none", "batch"), steps=600, probe_every=100, eval_every=50)
    cfg = dataclasses.replace(cfg, n_eval=500, n_test=200, step_multipliers=(0.5, 2.0, 4.0))
    return [mlp.run(c) for c in seed_configs(cfg, SEEDS)]


def test_mlp_loss_band_is_narrower_with_bn(mlps):
    ratio = mlp.landscape_ratio(mlps, "loss_band")
    assert (ratio > 1).all(), ratio  # the paper's direction (its ratio: 7x)


def test_mlp_raw_gradient_shift_is_larger_with_bn_at_layer_5(mlps):
    l2 = mlp.layer5(mlps, "ics_l2")
    assert verdict("ics-layer5-l2", l2["batch"] - l2["none"]) == "reproduced", l2


def test_mlp_gradient_shift_is_not_removed_by_bn(mlps):
    cos = mlp.layer5(mlps)
    assert verdict("ics-layer5-cos-far-from-1", np.maximum(*cos.values())) == "reproduced", cos


@pytest.fixture(scope="module")
def dlns_small():
    # both seeds stacked in one run (float64, loss from the data's moments); after 300 steps
    # seed 0's BN network has not yet moved away from the standard one's deep-layer cosine
    cfg = dln.Config(steps=1000, probe_every=100, loss_every=100, seeds=SEEDS)
    return dln.run(dln.small_lr_config(cfg))


def test_dln_standard_keeps_its_gradient_direction_and_bn_does_not(dlns_small):
    assert verdict("dln-standard-cos-lr1e-7", dln.deep_cos(dlns_small, "none")) == "reproduced"
    diff = dln.deep_cos(dlns_small, "batch") - dln.deep_cos(dlns_small, "none")
    assert verdict("dln-bn-cos-lr1e-7", diff) == "reproduced", diff


@pytest.fixture(scope="module")
def dlns():
    cfg = dln.Config(steps=300, probe_every=50, loss_every=50, seeds=SEEDS)
    return dln.run(dataclasses.replace(cfg, variants=("none", "batch", "l2")))


def test_dln_loss_explodes_along_the_gradient_without_bn_only(dlns):
    ratio = dln.worst_loss(dlns, "none") / dln.worst_loss(dlns, "batch")
    assert verdict("dln-worst-loss-ratio", ratio) == "reproduced", ratio


def test_dln_normalized_networks_end_below_the_standard_one(dlns):
    for norm in ("batch", "l2"):
        ratio = dln.final_loss_ratio(dlns, norm)
        assert (ratio < 1).all(), (norm, ratio)  # the paper's direction (its ratio: 0.29)


def test_dln_deep_layer_window_is_a_config_field():
    cfg = dln.Config(depth=6, dim=3, n_samples=20, steps=2, probe_every=1, deep_layers=(3, 5))
    result = dln.run(dataclasses.replace(cfg, variants=("none",), ics_variants=("none",)))
    expected = np.median(result.ics_cos["none"][:, :, 3:5].reshape(len(cfg.seeds), -1), axis=1)
    np.testing.assert_allclose(dln.deep_cos(result, "none"), expected)
    assert dln.DEEP_LAYERS == dln.Config().deep == slice(19, 24)


def test_fig1_at_5x_the_learning_rate_bn_trains_and_the_standard_net_fails():
    """As why/smoothness states it: BN trains on every seed; the standard net fails on most
    (one of the book's seeds ends near the 30% line under some float kernels, so the page
    asserts "reproduced or partly", and so does this test)."""
    cfg = lrx.Config(hidden=NARROW, lrs=(0.5,), steps=200, n_eval=500)
    results = [lrx.run(c) for c in seed_configs(cfg, SEEDS)]
    assert verdict("fig1-standard-fails", lrx.final_accuracy(results, "none", 0.5)) in (
        "reproduced",
        "partly",
    )
    assert verdict("fig1-bn-trains", lrx.final_accuracy(results, "batch", 0.5)) == "reproduced"


def test_fig1_rejects_bad_configs():
    with pytest.raises(ValueError, match="norms must be"):
        lrx.run(lrx.Config(norms=("gn",)))
    with pytest.raises(ValueError, match="learning rates must be positive"):
        lrx.run(lrx.Config(lrs=(0.0,)))


def test_every_santurkar_claim_is_registered_with_its_chapter():
    ids = {c.id: c for c in claims.all_claims() if c.paper == "Santurkar et al. 2018"}
    for module in (nb, mlp, dln, lrx):
        for c in module.CLAIMS:
            assert ids[c.id] is c
            assert c.chapter in ("book/why/ics", "book/why/smoothness")
