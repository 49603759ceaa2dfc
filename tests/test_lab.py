"""The BN lab (``book/_static/bnlab.js``) against its Python twin, :mod:`bnguide.lab`.

Without a built site: :func:`bnguide.lab.simulate` is checked against ``torch.nn.BatchNorm1d``
in float64, its input checks, and the claims the lab's page makes in its experiments (over
several seeds, each checked on a second, disjoint set of seeds).

With the built site (served and opened in headless Chromium with the fixtures of
``tests/test_website.py``; ``BNGUIDE_SITE`` points at another build folder): the lab's page is
driven like a reader drives it, by setting the controls to test vectors exported from Python and
by the keyboard, and every number the page shows is compared with what ``bnguide.numpy_bn``
computes from the same inputs, to 1e-9. Screenshots of the lab in the light and the dark theme
go to ``artifacts/screenshots/lab-light.png`` and ``lab-dark.png``.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import test_website as website
import torch

from bnguide import lab
from bnguide.momentum import half_life

# The website test's fixtures: the built site, a local server for it and a Chromium context.
site, server, browser = website.site, website.server, website.browser

PAGE = "book/implementation/bn-lab.html"
TOLERANCE = 1e-9
SCREENSHOTS = website.SCREENSHOTS
CONTROL_ORDER = ["batchSize", "shift", "scale", "gamma", "beta", "momentum", "mode", "steps"]
BUTTONS = ["1", "10", "reset", "play"]
NUMBER_KEYS = [
    "batch-mean",
    "batch-var",
    "batch-var-unbiased",
    "running-mean",
    "running-var",
    "train-mean",
    "train-std",
    "eval-mean",
    "eval-std",
    "gap",
]

# ---------------------------------------------------------------------------------------------
# The Python twin
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch_size, shift, scale, gamma, beta, momentum, steps",
    [
        (8, 3.0, 2.0, 1.0, 0.0, 0.1, 0),
        (8, 3.0, 2.0, 1.5, -0.5, 0.1, 60),
        (2, -10.0, 0.1, -3.0, 3.0, 1.0, 7),
        (64, 0.5, 5.0, 0.2, 1.0, 0.01, 200),
    ],
)
def test_simulate_matches_torch_batchnorm1d(batch_size, shift, scale, gamma, beta, momentum, steps):
    state = lab.simulate(batch_size, shift, scale, gamma, beta, momentum, steps)
    x = torch.tensor(shift + scale * lab.standard_batches(lab.SEED, steps + 1, batch_size))
    bn = torch.nn.BatchNorm1d(1, eps=lab.EPS, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.fill_(gamma)
        bn.bias.fill_(beta)
        means, variances = [bn.running_mean.item()], [bn.running_var.item()]
        for t in range(steps):
            bn(x[t][:, None])
            means.append(bn.running_mean.item())
            variances.append(bn.running_var.item())
        train = bn(x[steps][:, None].clone())[:, 0]
        bn.eval()
        # the training call above updated the running statistics once more: restore them
        bn.running_mean.fill_(means[-1])
        bn.running_var.fill_(variances[-1])
        evaluation = bn(x[steps][:, None])[:, 0]
    np.testing.assert_allclose(state.inputs, x[steps].numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(state.running_mean, means, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(state.running_var, variances, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(state.train_output, train.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.eval_output, evaluation.numpy(), rtol=1e-12, atol=1e-12)
    assert state.batch_var_unbiased == pytest.approx(x[steps].var(unbiased=True).item(), 1e-13)


def test_standard_batches_have_mean_zero_and_variance_one():
    z = lab.standard_batches(12345, 1000, 100)  # (1000, 100)
    assert z.shape == (1000, 100)
    # Irwin-Hall: mean 0, variance 12 * 1/12 = 1, bounded by +-6
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1.0) < 0.02
    assert np.abs(z).max() < 6.0
    # every value is a multiple of 2**-32: the sum of 12 uniforms is exact in float64
    assert np.all((z * 2.0**32) == np.round(z * 2.0**32))


def _mulberry32(seed: int, count: int) -> list[float]:
    """mulberry32 one draw at a time, as bnlab.js writes it (Math.imul = low 32 bits)."""
    mask, a, out = 0xFFFFFFFF, seed & 0xFFFFFFFF, []
    for _ in range(count):
        a = (a + 0x6D2B79F5) & mask
        t = ((a ^ (a >> 15)) * (1 | a)) & mask
        t = ((t + (((t ^ (t >> 7)) * (61 | t)) & mask)) & mask) ^ t
        out.append(((t ^ (t >> 14)) & mask) / 4294967296)
    return out


def test_uniforms_equal_the_sequential_generator():
    for seed in (lab.SEED, 0, 1, 2**31 - 1, 2**32 - 1):
        assert lab.uniforms(seed, 3000).tolist() == _mulberry32(seed, 3000), seed
    assert lab.uniforms(5, 0).shape == (0,)


def test_uniforms_use_the_low_32_bits_of_the_seed_like_javascript():
    np.testing.assert_array_equal(lab.uniforms(2**32 + 7, 50), lab.uniforms(7, 50))
    np.testing.assert_array_equal(lab.uniforms(-1, 50), lab.uniforms(2**32 - 1, 50))
    u = lab.uniforms(0, 10_000)
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 1}, "batch_size must be an integer of at least 2"),
        ({"batch_size": 2.5}, "batch_size must be an integer of at least 2"),
        ({"scale": 0.0}, "scale must be positive"),
        ({"momentum": 0.0}, r"momentum must lie in \(0, 1\]"),
        ({"momentum": 1.5}, r"momentum must lie in \(0, 1\]"),
        ({"steps": -1}, r"steps must be an integer in \[0, 500\]"),
        ({"steps": 501}, r"steps must be an integer in \[0, 500\]"),
    ],
)
def test_simulate_says_which_argument_is_wrong(kwargs, message):
    arguments = {"batch_size": 8, "shift": 0.0, "scale": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        lab.simulate(**arguments)


# --- the claims of the lab's page (book/implementation/bn-lab.md) ---------------------------

SEED_SETS = [range(0, 20), range(20, 40)]  # every claim is checked on two disjoint sets


def test_claim_training_mode_undoes_any_shift_and_scale():
    """Experiment 1: in training mode the output does not depend on the shift, and on the scale
    only through eps; its mean is beta and its standard deviation |gamma| (a hair less)."""
    for seed in (*SEED_SETS[0], *SEED_SETS[1]):
        a = lab.simulate(8, 3.0, 2.0, gamma=1.5, beta=0.5, steps=3, seed=seed)
        b = lab.simulate(8, -7.0, 2.0, gamma=1.5, beta=0.5, steps=3, seed=seed)
        c = lab.simulate(8, -7.0, 0.5, gamma=1.5, beta=0.5, steps=3, seed=seed)
        np.testing.assert_allclose(a.train_output, b.train_output, rtol=0, atol=1e-12)
        # a quarter of the scale: eps / var grows from about 2.5e-6 to 4e-5, a relative change
        np.testing.assert_allclose(b.train_output, c.train_output, rtol=0, atol=1.5 * 1e-3)
        assert a.train_output.mean() == pytest.approx(0.5, abs=1e-12)
        assert 1.5 * (1 - 1e-3) < a.train_output.std() <= 1.5


def test_claim_evaluation_at_step_zero_does_almost_nothing():
    """Experiment 2: before any step, evaluation mode is y = gamma x / sqrt(1 + eps) + beta."""
    for seed in (*SEED_SETS[0], *SEED_SETS[1]):
        state = lab.simulate(8, 3.0, 2.0, gamma=1.0, beta=0.0, steps=0, seed=seed)
        expected = state.inputs / math.sqrt(1.0 + lab.EPS)
        np.testing.assert_allclose(state.eval_output, expected, rtol=1e-14, atol=0)


def test_claim_running_mean_arrives_as_one_minus_momentum_to_the_t():
    """Experiment 3: the initial value keeps the weight (1 - m)^t: under 1% at step 44 for
    m = 0.1, at step 459 for m = 0.01; over seeds the running mean at step 44 averages
    shift * (1 - 0.9^44) ~ 2.97."""
    assert 0.9**44 < 0.01 <= 0.9**43 and 0.99**459 < 0.01 <= 0.99**458
    assert half_life(0.1) < 44 * 0.2  # (a sanity link to bnguide.momentum's own arithmetic)
    expected = 3.0 * (1 - 0.9**44)
    for seeds in (range(0, 50), range(50, 100)):
        final = [lab.simulate(8, 3.0, 2.0, steps=44, seed=s).running_mean[-1] for s in seeds]
        # one seed scatters by about 2 / sqrt(8) * sqrt(0.1 / 1.9) = 0.16; 50 seeds by 0.023
        assert abs(np.mean(final) - expected) < 0.1, (np.mean(final), expected)


def test_claim_a_large_momentum_is_noisier():
    """Experiment 4: from step 100 the running mean scatters about sqrt((0.5/1.5)/(0.05/1.95))
    = 3.6 times as much with momentum 0.5 as with 0.05: an exponential average with weight m
    of i.i.d. batch means keeps a share m / (2 - m) of their variance. Checked to within a
    factor 1.5 of the theory (the std over 200 correlated steps of one run is itself noisy)."""
    theory = math.sqrt((0.5 / 1.5) / (0.05 / 1.95))
    for seeds in SEED_SETS:
        noise = {
            m: np.mean(
                [
                    np.std(
                        lab.simulate(8, 3.0, 2.0, momentum=m, steps=300, seed=s).running_mean[100:]
                    )
                    for s in seeds
                ]
            )
            for m in (0.5, 0.05)
        }
        ratio = noise[0.5] / noise[0.05]
        assert theory / 1.5 < ratio < theory * 1.5, (ratio, theory)


def test_claim_small_batches_leave_a_gap():
    """Experiment 5: after 200 steps the train-vs-eval gap is several times larger with 4
    values per batch than with 64 (the batch mean scatters as 1 / sqrt(N): 4 times)."""
    for seeds in SEED_SETS:
        small = np.mean([lab.simulate(4, 3.0, 2.0, steps=200, seed=s).gap for s in seeds])
        large = np.mean([lab.simulate(64, 3.0, 2.0, steps=200, seed=s).gap for s in seeds])
        assert small > 2 * large, (small, large)


def test_claim_bessel_correction_at_batch_size_two():
    """Experiment 6: at N = 2 the biased batch variance averages to half the true variance and
    the running variance (unbiased) settles around the true variance."""
    for seeds in (range(0, 10), range(10, 20)):
        states = [lab.simulate(2, 3.0, 2.0, steps=500, seed=s) for s in seeds]
        biased = np.mean([s.step_vars.mean() / 2 for s in states])  # step_vars are unbiased
        running = np.mean([s.running_var[100:].mean() for s in states])
        assert biased == pytest.approx(4.0 / 2, rel=0.1)
        assert running == pytest.approx(4.0, rel=0.1)


# ---------------------------------------------------------------------------------------------
# The lab in the browser
# ---------------------------------------------------------------------------------------------

# Every number the lab shows, with the control values it used (as the page holds them).
_READ_JS = """
root => {
  const values = {}, arrays = {x: [], 'y-train': [], 'y-eval': []}, shown = {};
  root.querySelectorAll('[data-value]').forEach(e => {
    const key = e.dataset.key;
    if (e.dataset.index !== undefined) arrays[key][Number(e.dataset.index)] = e.dataset.value;
    else { values[key] = e.dataset.value; shown[key] = e.textContent; }
  });
  const controls = {};
  root.querySelectorAll('input[type=range]')
    .forEach(i => { controls[i.dataset.control] = i.value; });
  const mode = root.querySelector('input[type=radio]:checked').value;
  return {values, arrays, shown, controls, mode, dataMode: root.dataset.mode,
          plotLabel: root.querySelector('svg[data-plot=batch]').textContent};
}
"""


class _Differences:
    """The largest |shown - Python| seen, per source ("page": the numbers in the page's DOM,
    "api": window.BNLab.simulate called directly), reported at the end of the module."""

    def __init__(self):
        self.max = {"page": 0.0, "api": 0.0}
        self.count = {"page": 0, "api": 0}

    def check(self, shown, expected, what, source="page"):
        shown, expected = np.asarray(shown, dtype=float), np.asarray(expected, dtype=float)
        assert shown.shape == expected.shape, (what, shown.shape, expected.shape)
        np.testing.assert_allclose(shown, expected, rtol=0, atol=TOLERANCE, err_msg=what)
        found = float(np.max(np.abs(shown - expected), initial=0.0))
        self.max[source] = max(self.max[source], found)
        self.count[source] += shown.size


@pytest.fixture(scope="module")
def differences():
    found = _Differences()
    yield found
    for source in ("page", "api"):
        print(
            f"\nBN lab ({source}): {found.count[source]} numbers compared with numpy_bn, "
            f"largest difference {found.max[source]:.3g}"
        )


@pytest.fixture(scope="module")
def lab_page(browser, server):
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    # as in tests/test_website.py: failed loads are reported with their URL (the favicon is
    # asked for by the browser itself, not by the page)
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.url != server + "favicon.ico"
            else None
        ),
    )
    page.on(
        "request",
        lambda r: None if r.url.startswith((server, "data:", "blob:")) else problems.append(r.url),
    )
    page.goto(server + PAGE, wait_until="load")
    page.locator("[data-bnlab] input[type=range]").first.wait_for()
    page.problems = problems
    yield page
    page.close()


@pytest.fixture()
def root(lab_page):
    """The lab, back at its initial settings (a reload), in the light theme."""
    lab_page.reload(wait_until="load")
    lab_page.locator("[data-bnlab] input[type=range]").first.wait_for()
    website._set_theme(lab_page, "light")
    return lab_page.locator("[data-bnlab]")


def _expected(read: dict) -> lab.LabState:
    c = read["controls"]
    return lab.simulate(
        batch_size=int(c["batchSize"]),
        shift=float(c["shift"]),
        scale=float(c["scale"]),
        gamma=float(c["gamma"]),
        beta=float(c["beta"]),
        momentum=float(c["momentum"]),
        steps=int(c["steps"]),
    )


def _compare(root, differences) -> dict:
    """Read everything the lab shows and compare it with numpy_bn on the same inputs."""
    read = root.evaluate(_READ_JS)
    state = _expected(read)
    arrays, values = read["arrays"], read["values"]
    differences.check([float(v) for v in arrays["x"]], state.inputs, "inputs")
    differences.check([float(v) for v in arrays["y-train"]], state.train_output, "train output")
    differences.check([float(v) for v in arrays["y-eval"]], state.eval_output, "eval output")
    expected = {
        "batch-mean": state.batch_mean,
        "batch-var": state.batch_var,
        "batch-var-unbiased": state.batch_var_unbiased,
        "running-mean": state.running_mean[-1],
        "running-var": state.running_var[-1],
        "train-mean": state.train_output.mean(),
        "train-std": state.train_output.std(),
        "eval-mean": state.eval_output.mean(),
        "eval-std": state.eval_output.std(),
        "gap": state.gap,
    }
    assert sorted(values) == sorted(NUMBER_KEYS)
    for key, value in expected.items():
        differences.check(float(values[key]), value, key)
        # what the reader reads: the same number to 4 significant digits
        text = float(read["shown"][key].replace("\u2212", "-"))
        assert text == pytest.approx(value, rel=6e-4, abs=1e-12), (key, text, value)
    assert read["dataMode"] == read["mode"]
    assert ("after BN (train)" if read["mode"] == "train" else "after BN (eval)") in read[
        "plotLabel"
    ]
    return read


def _set(root, key: str, value) -> None:
    root.locator(f"input[type=range][data-control={key}]").fill(str(value))


def _test_vectors() -> list[dict]:
    """Settings that reach every end of every control, in both modes."""
    corners = [
        {
            "batchSize": 2,
            "shift": -10,
            "scale": 0.1,
            "gamma": -3,
            "beta": 3,
            "momentum": 1,
            "steps": 1,
            "mode": "eval",
        },
        {
            "batchSize": 64,
            "shift": 10,
            "scale": 5,
            "gamma": 3,
            "beta": -3,
            "momentum": 0.01,
            "steps": 500,
            "mode": "train",
        },
        {
            "batchSize": 13,
            "shift": 2.5,
            "scale": 0.7,
            "gamma": 0.3,
            "beta": -1.2,
            "momentum": 0.37,
            "steps": 44,
            "mode": "eval",
        },
        {
            "batchSize": 8,
            "shift": 3,
            "scale": 2,
            "gamma": 1,
            "beta": 0,
            "momentum": 0.1,
            "steps": 0,
            "mode": "eval",
        },
    ]
    rng = np.random.default_rng(17)
    for _ in range(4):
        corners.append(
            {
                "batchSize": int(rng.integers(2, 65)),
                "shift": float(rng.integers(-20, 21)) / 2,
                "scale": float(rng.integers(1, 51)) / 10,
                "gamma": float(rng.integers(-30, 31)) / 10,
                "beta": float(rng.integers(-30, 31)) / 10,
                "momentum": float(rng.integers(1, 101)) / 100,
                "steps": int(rng.integers(0, 501)),
                "mode": str(rng.choice(["train", "eval"])),
            }
        )
    return corners


def test_the_generator_in_the_page_is_bit_identical_to_python(lab_page):
    for seed in (lab.SEED, 0, 1, -5, 2**31 + 3, 2**32 - 1):
        shown = lab_page.evaluate("s => Array.from(BNLab.uniforms(s, 2000))", seed)
        assert shown == lab.uniforms(seed, 2000).tolist(), seed
    z = lab_page.evaluate("() => BNLab.standardBatches(BNLab.SEED, 3, 64).map(r => Array.from(r))")
    assert z == lab.standard_batches(lab.SEED, 3, 64).tolist()


def test_the_lab_is_built_accessible_and_error_free(root, lab_page):
    assert lab_page.locator("[data-bnlab] >> text=needs JavaScript").count() == 0
    info = root.evaluate(
        """root => ({
      ranges: Array.from(root.querySelectorAll('input[type=range]')).map(i => ({
        key: i.dataset.control, labels: Array.from(i.labels).map(l => l.textContent.trim()),
        described: (document.getElementById(i.getAttribute('aria-describedby')) || {}).textContent,
        valuetext: i.getAttribute('aria-valuetext')})),
      radios: Array.from(root.querySelectorAll('input[type=radio]')).map(i =>
        Array.from(i.labels).map(l => l.textContent.trim())),
      legends: Array.from(root.querySelectorAll('fieldset > legend')).map(l => l.textContent),
      svgs: Array.from(root.querySelectorAll('svg')).map(s => ({role: s.getAttribute('role'),
        title: (document.getElementById(s.getAttribute('aria-labelledby')) || {}).textContent})),
      live: (root.querySelector('[aria-live]') || {}).textContent,
      buttons: Array.from(root.querySelectorAll('button')).map(b => b.textContent),
    })"""
    )
    assert [r["key"] for r in info["ranges"]] == [k for k in CONTROL_ORDER if k != "mode"]
    for r in info["ranges"]:
        assert r["labels"] and r["labels"][0], r
        assert r["described"] and r["valuetext"], r
    assert all(labels and labels[0] for labels in info["radios"]) and len(info["radios"]) == 2
    assert {"Incoming activations", "The BN layer", "Mode", "Training"} <= set(info["legends"])
    assert len(info["svgs"]) == 2
    for svg in info["svgs"]:
        assert svg["role"] == "img" and len(svg["title"] or "") > 40, svg
    assert (info["live"] or "").startswith("Step 0, training mode.")
    assert info["buttons"] == ["Take 1 step", "Take 10 steps", "Back to step 0", "Play"]
    assert lab_page.problems == [], lab_page.problems


def test_numbers_shown_equal_numpy_bn_for_test_vectors_from_python(root, differences):
    read = _compare(root, differences)  # the initial settings
    assert read["controls"] == {
        "batchSize": "8",
        "shift": "3",
        "scale": "2",
        "gamma": "1",
        "beta": "0",
        "momentum": "0.1",
        "steps": "0",
    }
    for vector in _test_vectors():
        for key, value in vector.items():
            if key == "mode":
                root.locator(f"input[type=radio][value={value}]").check()
            else:
                _set(root, key, value)
        read = _compare(root, differences)
        assert read["mode"] == vector["mode"]
        assert {k: float(v) for k, v in read["controls"].items()} == {
            k: float(v) for k, v in vector.items() if k != "mode"
        }


def test_the_javascript_arithmetic_equals_numpy_bn_on_random_settings(lab_page, differences):
    rng = np.random.default_rng(2015)
    for _ in range(60):
        p = {
            "batchSize": int(rng.integers(2, 65)),
            "shift": float(rng.uniform(-10, 10)),
            "scale": float(rng.uniform(0.1, 5)),
            "gamma": float(rng.uniform(-3, 3)),
            "beta": float(rng.uniform(-3, 3)),
            "momentum": float(rng.uniform(0.01, 1)),
            "steps": int(rng.integers(0, 501)),
            "seed": int(rng.integers(0, 2**32)),
        }
        js = lab_page.evaluate(
            """p => { const s = BNLab.simulate(p); return {x: Array.from(s.inputs),
              train: Array.from(s.trainOutput), evaluation: Array.from(s.evalOutput),
              rm: s.runningMean, rv: s.runningVar, gap: s.gap}; }""",
            p,
        )
        state = lab.simulate(
            p["batchSize"],
            p["shift"],
            p["scale"],
            p["gamma"],
            p["beta"],
            p["momentum"],
            p["steps"],
            seed=p["seed"],
        )
        assert js["x"] == state.inputs.tolist()  # the same batch, bit for bit
        differences.check(js["train"], state.train_output, json.dumps(p), "api")
        differences.check(js["evaluation"], state.eval_output, json.dumps(p), "api")
        differences.check(js["rm"], state.running_mean, json.dumps(p), "api")
        differences.check(js["rv"], state.running_var, json.dumps(p), "api")
        differences.check(js["gap"], state.gap, json.dumps(p), "api")


def test_tab_visits_the_controls_in_reading_order(root, lab_page):
    root.locator("input[data-control=batchSize]").focus()
    visited = []
    for _ in range(len(CONTROL_ORDER) + len(BUTTONS) + 1):
        visited.append(
            lab_page.evaluate(
                """() => { const e = document.activeElement;
                   return e.dataset.control || e.dataset.action || e.tagName.toLowerCase(); }"""
            )
        )
        lab_page.keyboard.press("Tab")
    assert visited == CONTROL_ORDER + BUTTONS + ["summary"]


def test_the_keyboard_moves_every_control_and_the_numbers_follow(root, lab_page, differences):
    def control(key):
        return root.locator(f"input[type=range][data-control={key}]")

    def press(key, keys):
        control(key).focus()
        for k in keys:
            lab_page.keyboard.press(k)
        return root.evaluate(_READ_JS)["controls"][key]

    assert press("batchSize", ["ArrowRight"] * 3) == "11"
    _compare(root, differences)
    assert press("batchSize", ["End"]) == "64"
    assert press("batchSize", ["Home"]) == "2"
    _compare(root, differences)
    assert press("shift", ["ArrowLeft", "ArrowDown"]) == "2"
    assert press("scale", ["ArrowUp"] * 5) == "2.5"
    assert press("gamma", ["ArrowLeft"] * 15) == "-0.5"
    assert press("beta", ["ArrowRight"] * 7) == "0.7"
    assert float(press("momentum", ["PageUp"])) > 0.1
    _compare(root, differences)
    assert press("steps", ["ArrowRight"] * 4) == "4"
    _compare(root, differences)

    # the mode: arrow keys move between the two radio buttons
    root.locator("input[type=radio][value=train]").focus()
    lab_page.keyboard.press("ArrowDown")
    assert _compare(root, differences)["mode"] == "eval"
    lab_page.keyboard.press("ArrowUp")
    assert _compare(root, differences)["mode"] == "train"

    # the buttons, pressed with Enter and Space
    root.locator("button[data-action='10']").focus()
    lab_page.keyboard.press("Enter")
    lab_page.keyboard.press("Space")
    assert _compare(root, differences)["controls"]["steps"] == "24"
    root.locator("button[data-action='1']").focus()
    lab_page.keyboard.press("Enter")
    assert _compare(root, differences)["controls"]["steps"] == "25"
    root.locator("button[data-action=reset]").focus()
    lab_page.keyboard.press("Enter")
    assert _compare(root, differences)["controls"]["steps"] == "0"
    # Play steps on its own until paused
    play = root.locator("button[data-action=play]")
    play.focus()
    lab_page.keyboard.press("Enter")
    assert play.get_attribute("aria-pressed") == "true"
    lab_page.wait_for_function(
        "() => Number(document.querySelector('[data-control=steps]').value) >= 3"
    )
    lab_page.keyboard.press("Enter")
    assert play.get_attribute("aria-pressed") == "false" and play.text_content() == "Play"
    _compare(root, differences)


def _luminance(css: str) -> float:
    channels = [float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
    linear = [
        (c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4
        for c in channels
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


_COLOURS_JS = """
root => {
  const style = e => getComputedStyle(e);
  const svg = root.querySelector('svg[data-plot=batch]');
  return {
    text: style(root).color, background: style(root).backgroundColor,
    svgText: style(svg.querySelector('text')).fill, svgBackground: style(svg).backgroundColor,
    tick: style(svg.querySelector('.bnlab-tick')).fill,
    caption: style(root.querySelector('figcaption')).color,
  };
}
"""


def _screenshot(page, root, path) -> None:
    """The lab alone, without a focus ring. The viewport is made tall enough to hold the whole
    lab below the theme's sticky header, so the shot is of the page as laid out (a full-page
    capture relays the page out at another size and can shift the clip)."""
    page.evaluate("() => document.activeElement.blur()")
    size = page.viewport_size
    header = 120  # the theme's sticky header, with room to spare
    try:
        height = root.evaluate("e => e.getBoundingClientRect().height")
        page.set_viewport_size({"width": size["width"], "height": int(height) + 2 * header})
        page.evaluate(
            "([e, h]) => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - h)",
            [root.element_handle(), header],
        )
        page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        box = root.bounding_box()
        margin = 12
        clip = {
            "x": max(0.0, box["x"] - margin),
            "y": max(0.0, box["y"] - margin),
            "width": box["width"] + 2 * margin,
            "height": box["height"] + 2 * margin,
        }
        page.screenshot(path=path, clip=clip)
    finally:
        page.set_viewport_size(size)


def test_the_lab_is_readable_in_both_themes_and_screenshotted(root, lab_page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("lab-*.png"):  # a stale shot must not stand in for a missing one
        old.unlink()
    _set(root, "steps", 30)
    colours = {}
    for theme in ("light", "dark"):
        website._set_theme(lab_page, theme)
        colours[theme] = c = root.evaluate(_COLOURS_JS)
        for fg, bg in [
            ("text", "background"),
            ("svgText", "svgBackground"),
            ("tick", "svgBackground"),
            ("caption", "background"),
        ]:
            assert _contrast(c[fg], c[bg]) >= 4.5, (theme, fg, bg, c)
        _screenshot(lab_page, root, SCREENSHOTS / f"lab-{theme}.png")
    assert (
        _luminance(colours["dark"]["background"]) < 0.1 < _luminance(colours["light"]["background"])
    )
    for theme in ("light", "dark"):
        assert (SCREENSHOTS / f"lab-{theme}.png").stat().st_size > 10_000, theme


def test_no_error_or_outside_request_on_the_lab_page(lab_page):
    # runs last: every interaction above has happened on this page by now
    assert lab_page.problems == [], lab_page.problems


def test_test_vectors_reach_the_ends_of_every_control():
    vectors = _test_vectors()
    ends = {
        "batchSize": (2, 64),
        "shift": (-10, 10),
        "scale": (0.1, 5),
        "gamma": (-3, 3),
        "beta": (-3, 3),
        "momentum": (0.01, 1),
        "steps": (0, 500),
    }
    for key, (lo, hi) in ends.items():
        values = [v[key] for v in vectors]
        assert lo in values and hi in values, key
        assert all(lo <= v <= hi for v in values), key
    assert {v["mode"] for v in vectors} == {"train", "eval"}
    assert not list(itertools.filterfalse(lambda v: v["scale"] > 0, vectors))
