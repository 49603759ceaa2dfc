/* The BN lab: batch normalization of one feature, in the reader's browser.
 *
 * Plain JavaScript and SVG, no library and no network. Every element with the attribute
 * data-bnlab becomes a lab. The arithmetic mirrors bnguide/numpy_bn.py and
 * bnguide/momentum.py (PyTorch's conventions: biased variance to normalize, unbiased variance
 * in the running average, momentum weighting the new batch), and the batches come from the
 * generator that bnguide/lab.py reproduces bit for bit; tests/test_lab.py compares the numbers
 * this page shows with Python's.
 */
(function () {
  "use strict";

  var SEED = 20150211;
  var EPS = 1e-5;
  var MAX_STEPS = 500;
  var DRAWS_PER_VALUE = 12;
  var SVG_NS = "http://www.w3.org/2000/svg";

  // ---------------------------------------------------------------------------------------
  // Arithmetic (the twin of bnguide/lab.py)
  // ---------------------------------------------------------------------------------------

  /* mulberry32: count uniforms in [0, 1), each a multiple of 2^-32. */
  function uniforms(seed, count) {
    var a = seed | 0;
    var out = new Float64Array(count);
    for (var i = 0; i < count; i++) {
      a = (a + 0x6d2b79f5) | 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = ((t + Math.imul(t ^ (t >>> 7), 61 | t)) | 0) ^ t;
      out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }
    return out;
  }

  /* numBatches rows of batchSize Irwin-Hall values (12 uniforms summed, minus 6). */
  function standardBatches(seed, numBatches, batchSize) {
    var u = uniforms(seed, numBatches * batchSize * DRAWS_PER_VALUE);
    var rows = [];
    var k = 0;
    for (var t = 0; t < numBatches; t++) {
      var row = new Float64Array(batchSize);
      for (var i = 0; i < batchSize; i++) {
        var total = 0;
        for (var j = 0; j < DRAWS_PER_VALUE; j++) total = total + u[k++];
        row[i] = total - 6;
      }
      rows.push(row);
    }
    return rows;
  }

  function mean(values) {
    var s = 0;
    for (var i = 0; i < values.length; i++) s += values[i];
    return s / values.length;
  }

  /* Biased variance, two passes (as numpy_bn.batchnorm_forward). */
  function biasedVar(values, mu) {
    var s = 0;
    for (var i = 0; i < values.length; i++) {
      var c = values[i] - mu;
      s += c * c;
    }
    return s / values.length;
  }

  function simulate(p) {
    var n = p.batchSize, steps = p.steps, m = p.momentum, eps = p.eps === undefined ? EPS : p.eps;
    var z = standardBatches(p.seed === undefined ? SEED : p.seed, steps + 1, n);
    var runningMean = [0], runningVar = [1], stepMeans = [], stepVars = [];
    var rm = 0, rv = 1, x;
    for (var t = 0; t <= steps; t++) {
      x = new Float64Array(n);
      for (var i = 0; i < n; i++) x[i] = p.shift + p.scale * z[t][i];
      if (t === steps) break;
      var mu = mean(x);
      var unbiased = biasedVar(x, mu) * (n / (n - 1));
      rm = (1 - m) * rm + m * mu; // PyTorch: momentum weights the new batch
      rv = (1 - m) * rv + m * unbiased;
      stepMeans.push(mu);
      stepVars.push(unbiased);
      runningMean.push(rm);
      runningVar.push(rv);
    }
    // Training mode: the batch's own statistics (numpy_bn.batchnorm_forward).
    var bm = mean(x);
    var bv = biasedVar(x, bm);
    var invStd = 1 / Math.sqrt(bv + eps);
    var train = new Float64Array(n), evalOut = new Float64Array(n);
    for (var j = 0; j < n; j++) train[j] = p.gamma * ((x[j] - bm) * invStd) + p.beta;
    // Evaluation mode: a fixed affine map from the running statistics (batchnorm_inference).
    var a = p.gamma / Math.sqrt(rv + eps);
    var b = p.beta - a * rm;
    for (var k = 0; k < n; k++) evalOut[k] = a * x[k] + b;
    var gap = 0;
    for (var q = 0; q < n; q++) gap = Math.max(gap, Math.abs(train[q] - evalOut[q]));
    return {
      inputs: x, batchMean: bm, batchVar: bv, batchVarUnbiased: bv * (n / (n - 1)),
      trainOutput: train, evalOutput: evalOut, runningMean: runningMean,
      runningVar: runningVar, stepMeans: stepMeans, stepVars: stepVars, gap: gap,
    };
  }

  function std(values) {
    return Math.sqrt(biasedVar(values, mean(values)));
  }

  // ---------------------------------------------------------------------------------------
  // Presentation
  // ---------------------------------------------------------------------------------------

  /* A number as the reader sees it: 4 significant digits, no exponent for ordinary sizes. */
  function show(v) {
    if (Math.abs(v) < 1e-12) return "0"; // rounding noise of a mean that is exactly 0
    var r = Number(v.toPrecision(4));
    if (Math.abs(r) >= 1e-3 && Math.abs(r) < 1e6) return String(r).replace("-", "\u2212");
    return r.toExponential(3).replace("-", "\u2212");
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    }
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* About five round tick values covering [lo, hi]. */
  function ticks(lo, hi) {
    var span = hi - lo;
    var step = Math.pow(10, Math.floor(Math.log10(span / 4)));
    var err = span / 4 / step;
    if (err >= 5) step *= 5;
    else if (err >= 2) step *= 2;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }

  function range(values, pad) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); });
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    var d = (hi - lo) * (pad || 0.08);
    return [lo - d, hi + d];
  }

  function tickLabel(v) {
    return String(Number(v.toPrecision(3))).replace("-", "\u2212");
  }

  var CONTROLS = [
    { key: "batchSize", label: "Batch size N", min: 2, max: 64, step: 1, value: 8,
      group: "in", help: "values in each mini-batch" },
    { key: "shift", label: "Shift of the activations", min: -10, max: 10, step: 0.5, value: 3,
      group: "in", help: "their true mean" },
    { key: "scale", label: "Scale of the activations", min: 0.1, max: 5, step: 0.1, value: 2,
      group: "in", help: "their true standard deviation" },
    { key: "gamma", label: "\u03b3 (gamma)", min: -3, max: 3, step: 0.1, value: 1, group: "bn",
      help: "scale of the output" },
    { key: "beta", label: "\u03b2 (beta)", min: -3, max: 3, step: 0.1, value: 0, group: "bn",
      help: "shift of the output" },
    { key: "momentum", label: "Momentum", min: 0.01, max: 1, step: 0.01, value: 0.1, group: "bn",
      help: "PyTorch's: the weight of the new batch" },
    { key: "steps", label: "Training steps taken", min: 0, max: MAX_STEPS, step: 1, value: 0,
      group: "train", help: "batches that have updated the running statistics" },
  ];

  var NUMBERS = [
    ["batch-mean", "Batch mean \u03bc_B"],
    ["batch-var", "Batch variance \u03c3\u00b2_B (biased: normalizes the batch)"],
    ["batch-var-unbiased", "Batch variance \u00d7 N/(N\u22121) (unbiased: goes into the running variance)"],
    ["running-mean", "Running mean"],
    ["running-var", "Running variance"],
    ["train-mean", "Output mean, training mode"],
    ["train-std", "Output standard deviation, training mode"],
    ["eval-mean", "Output mean, evaluation mode"],
    ["eval-std", "Output standard deviation, evaluation mode"],
    ["gap", "Train-vs-eval gap: largest |y_train \u2212 y_eval| in the batch"],
  ];

  var counter = 0;

  function Lab(root) {
    this.root = root;
    this.id = "bnlab" + (++counter);
    this.seed = Number(root.getAttribute("data-seed") || SEED);
    this.inputs = {};
    this.outputs = {};
    this.cells = {};
    this.timer = null;
    this.build();
    this.update();
  }

  Lab.prototype.build = function () {
    var self = this, root = this.root;
    root.textContent = "";
    root.classList.add("bnlab");
    root.setAttribute("role", "group");
    root.setAttribute("aria-label", "BN lab: batch normalization of one feature");

    var groups = {
      in: el("fieldset", { class: "bnlab-group" }, [el("legend", { text: "Incoming activations" })]),
      bn: el("fieldset", { class: "bnlab-group" }, [el("legend", { text: "The BN layer" })]),
      train: el("fieldset", { class: "bnlab-group" }, [el("legend", { text: "Training" })]),
    };
    CONTROLS.forEach(function (c) {
      var id = self.id + "-" + c.key;
      var input = el("input", {
        type: "range", id: id, min: c.min, max: c.max, step: c.step, value: c.value,
        "data-control": c.key, "aria-describedby": id + "-help",
      });
      var output = el("output", { for: id, id: id + "-out", class: "bnlab-value", "aria-hidden": "true" });
      var row = el("div", { class: "bnlab-control" }, [
        el("label", { for: id, text: c.label }), output, input,
        el("span", { id: id + "-help", class: "bnlab-help", text: c.help }),
      ]);
      input.addEventListener("input", function () { self.update(); });
      self.inputs[c.key] = input;
      self.outputs[c.key] = output;
      groups[c.group].appendChild(row);
    });

    // Mode: two radio buttons (arrow keys move between them).
    var mode = el("fieldset", { class: "bnlab-mode" }, [el("legend", { text: "Mode" })]);
    [["train", "Training (batch statistics)"], ["eval", "Evaluation (running statistics)"]].forEach(
      function (m, i) {
        var id = self.id + "-mode-" + m[0];
        var radio = el("input", { type: "radio", id: id, name: self.id + "-mode", value: m[0],
          "data-control": "mode" });
        if (i === 0) radio.checked = true;
        radio.addEventListener("change", function () { self.update(); });
        mode.appendChild(el("div", {}, [radio, el("label", { for: id, text: m[1] })]));
        self.inputs["mode-" + m[0]] = radio;
      });
    groups.bn.appendChild(mode);

    var buttons = el("div", { class: "bnlab-buttons" });
    [["1", "Take 1 step"], ["10", "Take 10 steps"], ["reset", "Back to step 0"]].forEach(function (b) {
      var button = el("button", { type: "button", "data-action": b[0], text: b[1] });
      button.addEventListener("click", function () { self.act(b[0]); });
      buttons.appendChild(button);
    });
    this.play = el("button", { type: "button", "data-action": "play", "aria-pressed": "false",
      text: "Play" });
    this.play.addEventListener("click", function () { self.toggle(); });
    buttons.appendChild(this.play);
    groups.train.appendChild(buttons);

    var controls = el("div", { class: "bnlab-controls" }, [groups.in, groups.bn, groups.train]);

    this.summary = el("p", { class: "bnlab-summary", "aria-live": "polite", id: this.id + "-summary" });

    this.batchSvg = svgEl("svg", { viewBox: "0 0 640 230", role: "img", class: "bnlab-plot",
      "aria-labelledby": this.id + "-batch-title", "data-plot": "batch" });
    this.batchTitle = svgEl("title", { id: this.id + "-batch-title" });
    this.statsSvg = svgEl("svg", { viewBox: "0 0 640 210", role: "img", class: "bnlab-plot",
      "aria-labelledby": this.id + "-stats-title", "data-plot": "running" });
    this.statsTitle = svgEl("title", { id: this.id + "-stats-title" });

    var table = el("table", { class: "bnlab-numbers" }, [
      el("caption", { text: "The numbers (the lab computes in float64, like NumPy)" }),
    ]);
    var body = el("tbody");
    NUMBERS.forEach(function (row) {
      var cell = el("td", { "data-key": row[0] });
      self.cells[row[0]] = cell;
      body.appendChild(el("tr", {}, [el("th", { scope: "row", text: row[1] }), cell]));
    });
    table.appendChild(body);

    this.batchBody = el("tbody");
    var details = el("details", { class: "bnlab-details" }, [
      el("summary", { text: "Every value of the batch on show" }),
      el("table", { class: "bnlab-batch" }, [
        el("thead", {}, [el("tr", {}, ["#", "input x", "output, training", "output, evaluation"]
          .map(function (h) { return el("th", { scope: "col", text: h }); }))]),
        this.batchBody,
      ]),
    ]);

    var figures = el("div", { class: "bnlab-figures" }, [
      el("figure", {}, [this.batchSvg, el("figcaption", {
        text: "The batch on show before BN (top) and after it (bottom), in the mode chosen; " +
          "lines join each value to its output." })]),
      el("figure", {}, [this.statsSvg, el("figcaption", {
        text: "The running mean and variance over the steps taken (solid) move towards the " +
          "true mean and variance (dashed); dots are each batch's own statistics." })]),
    ]);
    root.appendChild(controls);
    root.appendChild(this.summary);
    root.appendChild(figures);
    root.appendChild(el("div", { class: "bnlab-tables" }, [table, details]));
  };

  Lab.prototype.params = function () {
    var v = {};
    for (var i = 0; i < CONTROLS.length; i++) {
      v[CONTROLS[i].key] = parseFloat(this.inputs[CONTROLS[i].key].value);
    }
    v.batchSize = Math.round(v.batchSize);
    v.steps = Math.round(v.steps);
    v.mode = this.inputs["mode-eval"].checked ? "eval" : "train";
    v.seed = this.seed;
    return v;
  };

  Lab.prototype.act = function (action) {
    var steps = this.inputs.steps;
    if (action === "reset") steps.value = 0;
    else steps.value = Math.min(MAX_STEPS, parseInt(steps.value, 10) + parseInt(action, 10));
    this.update();
  };

  Lab.prototype.toggle = function () {
    var self = this;
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    } else {
      this.timer = setInterval(function () {
        if (parseInt(self.inputs.steps.value, 10) >= MAX_STEPS) self.toggle();
        else self.act("1");
      }, 120);
    }
    this.play.setAttribute("aria-pressed", this.timer ? "true" : "false");
    this.play.textContent = this.timer ? "Pause" : "Play";
  };

  function setNumber(cell, v) {
    cell.setAttribute("data-value", String(v));
    cell.textContent = show(v);
  }

  Lab.prototype.update = function () {
    var p = this.params();
    var s = simulate(p);
    this.state = s;
    var self = this;
    CONTROLS.forEach(function (c) {
      var text = show(p[c.key]);
      self.outputs[c.key].textContent = text;
      self.inputs[c.key].setAttribute("aria-valuetext", text);
    });
    var rm = s.runningMean[s.runningMean.length - 1], rv = s.runningVar[s.runningVar.length - 1];
    var values = {
      "batch-mean": s.batchMean, "batch-var": s.batchVar, "batch-var-unbiased": s.batchVarUnbiased,
      "running-mean": rm, "running-var": rv,
      "train-mean": mean(s.trainOutput), "train-std": std(s.trainOutput),
      "eval-mean": mean(s.evalOutput), "eval-std": std(s.evalOutput), gap: s.gap,
    };
    for (var key in values) setNumber(this.cells[key], values[key]);

    this.batchBody.textContent = "";
    for (var i = 0; i < p.batchSize; i++) {
      var row = el("tr", {}, [el("td", { text: String(i + 1) })]);
      [["x", s.inputs[i]], ["y-train", s.trainOutput[i]], ["y-eval", s.evalOutput[i]]].forEach(
        function (c) {
          var cell = el("td", { "data-key": c[0], "data-index": String(i) });
          setNumber(cell, c[1]);
          row.appendChild(cell);
        });
      this.batchBody.appendChild(row);
    }
    this.root.setAttribute("data-mode", p.mode);
    this.drawBatch(p, s);
    this.drawStats(p, s);
    this.summary.textContent =
      "Step " + p.steps + ", " + (p.mode === "train" ? "training" : "evaluation") + " mode. " +
      "The batch of " + p.batchSize + " has mean " + show(s.batchMean) + " and variance " +
      show(s.batchVar) + "; the running mean is " + show(rm) + " and the running variance " +
      show(rv) + " (true values " + show(p.shift) + " and " + show(p.scale * p.scale) + "). " +
      "Evaluation mode moves an output by up to " + show(s.gap) + " from its training value.";
  };

  /* One number line: axis, ticks, and the values as dots. Returns the x position function. */
  function numberLine(svg, y, lo, hi, label) {
    var x0 = 150, x1 = 625;
    var pos = function (v) { return x0 + (v - lo) / (hi - lo) * (x1 - x0); };
    svg.appendChild(svgEl("text", { x: 8, y: y + 4, class: "bnlab-label" }, label));
    svg.appendChild(svgEl("line", { x1: x0, x2: x1, y1: y, y2: y, class: "bnlab-axis" }));
    ticks(lo, hi).forEach(function (t) {
      svg.appendChild(svgEl("line", { x1: pos(t), x2: pos(t), y1: y, y2: y + 5, class: "bnlab-axis" }));
      svg.appendChild(svgEl("text", { x: pos(t), y: y + 18, class: "bnlab-tick" }, tickLabel(t)));
    });
    return pos;
  }

  /* A labelled vertical mark just above a number line. */
  function marker(svg, x, y, cls, text) {
    svg.appendChild(svgEl("line", { x1: x, x2: x, y1: y - 16, y2: y + 2, class: cls }));
    svg.appendChild(svgEl("text", { x: x, y: y - 20, class: cls + "-text" }, text));
  }

  Lab.prototype.drawBatch = function (p, s) {
    var svg = this.batchSvg;
    svg.textContent = "";
    svg.appendChild(this.batchTitle);
    var out = p.mode === "train" ? s.trainOutput : s.evalOutput;
    var rm = s.runningMean[s.runningMean.length - 1];
    // Both axes show at least [-4, 4], so moving a control moves the dots (not only the ticks);
    // they widen when the values need more room.
    var inRange = range(Array.from(s.inputs).concat([s.batchMean, rm, -4, 4]), 0.03);
    var outRange = range(Array.from(out).concat([p.beta - Math.abs(p.gamma),
      p.beta + Math.abs(p.gamma), -4, 4]), 0.03);
    var yIn = 60, yOut = 180;
    var posIn = numberLine(svg, yIn, inRange[0], inRange[1], "before BN: x");
    var posOut = numberLine(svg, yOut, outRange[0], outRange[1],
      p.mode === "train" ? "after BN (train)" : "after BN (eval)");
    // the band beta +- |gamma|: where training mode puts one standard deviation of outputs
    svg.appendChild(svgEl("rect", { x: posOut(p.beta - Math.abs(p.gamma)), y: yOut - 10,
      width: Math.max(1, posOut(p.beta + Math.abs(p.gamma)) - posOut(p.beta - Math.abs(p.gamma))),
      height: 20, class: "bnlab-band" }));
    for (var i = 0; i < out.length; i++) {
      svg.appendChild(svgEl("line", { x1: posIn(s.inputs[i]), y1: yIn + 6, x2: posOut(out[i]),
        y2: yOut - 6, class: "bnlab-link" }));
    }
    marker(svg, posIn(s.batchMean), yIn, "bnlab-batchmean", "batch mean");
    svg.appendChild(svgEl("line", { x1: posIn(rm), x2: posIn(rm), y1: yIn - 2, y2: yIn + 22,
      class: "bnlab-runningmean" }));
    svg.appendChild(svgEl("text", { x: posIn(rm), y: yIn + 34, class: "bnlab-runningmean-text" },
      "running mean"));
    marker(svg, posOut(p.beta), yOut, "bnlab-beta", "\u03b2");
    for (var j = 0; j < out.length; j++) {
      svg.appendChild(svgEl("circle", { cx: posIn(s.inputs[j]), cy: yIn, r: 4.5, class: "bnlab-dot" }));
      svg.appendChild(svgEl("circle", { cx: posOut(out[j]), cy: yOut, r: 4.5, class: "bnlab-dot bnlab-dot-out" }));
    }
    this.batchTitle.textContent = "A batch of " + p.batchSize + " values between " +
      show(Math.min.apply(null, s.inputs)) + " and " + show(Math.max.apply(null, s.inputs)) +
      " comes out of BN in " + (p.mode === "train" ? "training" : "evaluation") +
      " mode with mean " + show(mean(out)) + " and standard deviation " + show(std(out)) + ".";
  };

  Lab.prototype.drawStats = function (p, s) {
    var svg = this.statsSvg;
    svg.textContent = "";
    svg.appendChild(this.statsTitle);
    var last = Math.max(p.steps, 20);
    var charts = [
      ["running mean", s.runningMean, s.stepMeans, p.shift, 60],
      ["running variance", s.runningVar, s.stepVars, p.scale * p.scale, 375],
    ];
    charts.forEach(function (c) {
      var x0 = c[4], x1 = c[4] + 245, y0 = 170, y1 = 30;
      var lo, hi, r = range(c[1].concat(c[2], [c[3]]), 0.05);
      lo = r[0]; hi = r[1];
      var px = function (t) { return x0 + t / last * (x1 - x0); };
      var py = function (v) { return y0 - (v - lo) / (hi - lo) * (y0 - y1); };
      svg.appendChild(svgEl("text", { x: x0, y: 18, class: "bnlab-label" }, c[0]));
      svg.appendChild(svgEl("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "bnlab-axis" }));
      svg.appendChild(svgEl("line", { x1: x0, x2: x0, y1: y0, y2: y1, class: "bnlab-axis" }));
      ticks(lo, hi).forEach(function (t) {
        svg.appendChild(svgEl("text", { x: x0 - 6, y: py(t) + 4, class: "bnlab-tick bnlab-tick-y" },
          tickLabel(t)));
      });
      ticks(0, last).forEach(function (t) {
        if (t !== Math.round(t)) return;
        svg.appendChild(svgEl("text", { x: px(t), y: y0 + 16, class: "bnlab-tick" }, String(t)));
      });
      svg.appendChild(svgEl("text", { x: (x0 + x1) / 2, y: y0 + 34, class: "bnlab-tick" }, "step"));
      svg.appendChild(svgEl("line", { x1: x0, x2: x1, y1: py(c[3]), y2: py(c[3]), class: "bnlab-target" }));
      c[2].forEach(function (v, t) {
        svg.appendChild(svgEl("circle", { cx: px(t + 1), cy: py(v), r: 2, class: "bnlab-stepdot" }));
      });
      var d = c[1].map(function (v, t) { return (t ? "L" : "M") + px(t).toFixed(2) + " " + py(v).toFixed(2); });
      svg.appendChild(svgEl("path", { d: d.join(" "), class: "bnlab-curve" }));
      svg.appendChild(svgEl("circle", { cx: px(p.steps), cy: py(c[1][c[1].length - 1]), r: 4,
        class: "bnlab-now" }));
    });
    var rm = s.runningMean[s.runningMean.length - 1], rv = s.runningVar[s.runningVar.length - 1];
    this.statsTitle.textContent = "After " + p.steps + " steps the running mean is " + show(rm) +
      " (true mean " + show(p.shift) + ") and the running variance " + show(rv) +
      " (true variance " + show(p.scale * p.scale) + ").";
  };

  function init() {
    var roots = document.querySelectorAll("[data-bnlab]");
    for (var i = 0; i < roots.length; i++) {
      if (!roots[i].bnlab) roots[i].bnlab = new Lab(roots[i]);
    }
  }

  window.BNLab = { uniforms: uniforms, standardBatches: standardBatches, simulate: simulate,
    SEED: SEED, EPS: EPS, MAX_STEPS: MAX_STEPS };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
