-- The gradient family beyond Saliency (InputXGradient, IntegratedGradients,
-- NoiseTunnel, GuidedBackprop, Deconvolution, LayerGradCam, GuidedGradCam,
-- LayerIntegratedGradients, LayerAttribution.interpolate): every golden case
-- of tests/fixtures/methods (Captum 0.8), NoiseTunnel's properties, many
-- targets in one call, forward hooks, and bad input for every option.
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

-- ------------------------------------------------------------ the models

local models = {}

models.softmax_mlp = H.softmax_mlp

function models.two_input()
  local m = nn.Module{forward = function(self, x1, x2, scale)
    return farol.matmul(x1, self.w1:t()):tanh() * scale + farol.matmul(x2 * x2, self.w2:t())
  end}
  m:parameter("w1", farol.zeros(3, 4))
  m:parameter("w2", farol.zeros(3, 3))
  return m
end

models.cnn_small = H.cnn_small
models.cnn_cifar = H.cnn_cifar

function models.text_classifier()
  return nn.Module{
    embedding = nn.Embedding(50, 8), conv = nn.Conv1d(8, 6, 3, {padding = 1}), fc = nn.Linear(6, 3),
    forward = function(self, tokens)
      local e = self.embedding(tokens):transpose(2, 3)    -- N x 8 x T
      local h = self.conv(e):relu():amax(3)               -- N x 6
      return self.fc(h)
    end,
  }
end

local model_of = {
  ixg_softmax_mlp = "softmax_mlp", ig_gausslegendre_none = "softmax_mlp",
  ig_riemann_trapezoid_scalar = "softmax_mlp", ig_riemann_left_tensor = "softmax_mlp",
  ig_riemann_right_tensor = "softmax_mlp", ig_riemann_middle_scalar = "softmax_mlp",
  ig_two_inputs = "two_input", guided_backprop_cnn = "cnn_small", deconvolution_cnn = "cnn_small",
  layer_gradcam_relu = "cnn_cifar", layer_gradcam_signed = "cnn_cifar", guided_gradcam = "cnn_cifar",
  layer_ig_embedding = "text_classifier",
}

-- the Lua calls of CASES.md (call_lua in the files; two are too long for
-- the metadata and are spelled out here)
local calls = {
  ig_two_inputs = function(model, t)
    return farol.IntegratedGradients(model):attribute({t["input.1"], t["input.2"]}, {
      target = {3, 1, 2}, baselines = {t["baseline.1"], 0.5}, additional_forward_args = {1.5},
      n_steps = 24, method = "riemann_trapezoid", return_convergence_delta = true})
  end,
  ig_riemann_right_tensor = function(model, t)
    return farol.IntegratedGradients(model):attribute(t["input.1"], {
      target = 4, method = "riemann_right", n_steps = 9, return_convergence_delta = true,
      baselines = t["baseline.1"], internal_batch_size = 4})
  end,
}

local function load_case(name)
  local t, meta = H.load("methods/" .. name .. ".safetensors")
  local model = models[model_of[name]]()
  if meta.dtype == "float64" then model:to("float64") end
  local weights = {}
  for w in meta.weights:gmatch("[^,]+") do weights[w] = t[w] end
  model:load_state_dict(weights)
  model:eval()
  return model, t, meta
end

local function run_case(name)
  local model, t, meta = load_case(name)
  local attr, delta
  if calls[name] then
    attr, delta = calls[name](model, t)
  else
    local code = meta.call_lua:gsub("tensor:([%w_%.]+)", function(n) return string.format("T[%q]", n) end)
    local f = assert(load("return " .. code, "=" .. name, "t", {T = t, farol = farol, model = model}))
    attr, delta = f()
  end
  return attr, delta, t, tonumber(meta.rtol), tonumber(meta.atol), model
end

describe("golden cases (Captum 0.8)", function()
  for _, name in ipairs({"ixg_softmax_mlp", "ig_gausslegendre_none", "ig_riemann_trapezoid_scalar",
                         "ig_riemann_left_tensor", "ig_riemann_right_tensor", "ig_riemann_middle_scalar",
                         "ig_two_inputs", "guided_backprop_cnn", "deconvolution_cnn",
                         "layer_gradcam_relu", "layer_gradcam_signed", "guided_gradcam",
                         "layer_ig_embedding"}) do
    it(name, function()
      local attr, delta, t, rtol, atol = run_case(name)
      if t["expected.2"] then
        H.close(attr[1], t["expected.1"], rtol, atol, name .. " input 1")
        H.close(attr[2], t["expected.2"], rtol, atol, name .. " input 2")
      else
        H.close(attr, t["expected.1"], rtol, atol, name)
      end
      if t.delta then H.close(delta, t.delta, rtol, atol, name .. " delta") end
      if t["upsampled.1"] then
        H.close(farol.LayerAttribution.interpolate(attr, {32, 32}, "bilinear"), t["upsampled.1"],
                rtol, atol, name .. " upsampled")
      end
    end)
  end
end)

-- ---------------------------------------------------------------- helpers

-- a float64 linear model x @ W^T (3 classes, 4 features) and a forward that
-- records the rows of every call
local function linear64(seed)
  farol.manual_seed(seed or 11)
  local W = farol.randn(3, 4, "float64")
  local rows = {}
  local f = function(x, ...)
    rows[#rows + 1] = x:size(1)
    return farol.matmul(x, W:t())
  end
  return f, W, rows
end

local function max_abs(t) return t:abs():max():item() end

local function bad(desc, fn, ...)
  local patterns = {...}
  it(desc, function()
    local err = H.fails(fn, table.unpack(patterns))()
    assert(err:find("^farol: "), "message does not start with \"farol: \": " .. err)
  end)
end

-- ---------------------------------------------------------- interpolate

describe("LayerAttribution.interpolate", function()
  local x = farol.tensor({{{{1, 2}, {3, 4}}}})
  it("nearest repeats each value (PyTorch's legacy nearest)", function()
    local y = farol.LayerAttribution.interpolate(x, {4, 4})
    H.close(y, farol.tensor({{{{1, 1, 2, 2}, {1, 1, 2, 2}, {3, 3, 4, 4}, {3, 3, 4, 4}}}}), 0, 0)
    -- 2 -> 3: sources floor(o * 2/3) = 0, 0, 1
    H.close(farol.LayerAttribution.interpolate(x, {3, 3}, "nearest"),
            farol.tensor({{{{1, 1, 2}, {1, 1, 2}, {3, 3, 4}}}}), 0, 0)
  end)
  it("bilinear with half-pixel centres (align_corners = false)", function()
    local y = farol.LayerAttribution.interpolate(x, {4, 4}, "bilinear")
    -- row 1: src -0.25 -> 0 (clamped), col weights 1; 0.25 ...
    H.close(y:select(1, 1):select(1, 1):select(1, 1), farol.tensor({1, 1.25, 1.75, 2}), 1e-6, 1e-6)
    H.close(y:select(1, 1):select(1, 1):select(1, 2), farol.tensor({1.5, 1.75, 2.25, 2.5}), 1e-6, 1e-6)
  end)
  it("area averages blocks", function()
    local z = farol.arange(1, 17):reshape(1, 1, 4, 4)
    H.close(farol.LayerAttribution.interpolate(z, {2, 2}, "area"),
            farol.tensor({{{{3.5, 5.5}, {11.5, 13.5}}}}), 1e-6, 1e-6)
  end)
  it("3-D (N, C, L) with one size", function()
    local v = farol.tensor({{{1, 2}}})
    H.close(farol.LayerAttribution.interpolate(v, {4}), farol.tensor({{{1, 1, 2, 2}}}), 0, 0)
    H.close(farol.LayerAttribution.interpolate(v, 4, "linear"), farol.tensor({{{1, 1.25, 1.75, 2}}}), 1e-6, 1e-6)
  end)
  bad("an unknown mode", function() return farol.LayerAttribution.interpolate(x, {4, 4}, "cubic") end,
      "farol: LayerAttribution.interpolate: mode must be \"nearest\", \"bilinear\", \"linear\" or \"area\", got \"cubic\"")
  bad("a size of the wrong length", function() return farol.LayerAttribution.interpolate(x, {4}) end,
      "farol: LayerAttribution.interpolate: attr of shape [1, 1, 2, 2] needs 2 (N, C, H, W) sizes; got 1")
  bad("a zero size", function() return farol.LayerAttribution.interpolate(x, {0, 4}) end,
      "farol: LayerAttribution.interpolate: size[1] must be an integer >= 1, got 0")
  bad("bilinear on 3-D", function() return farol.LayerAttribution.interpolate(farol.ones(1, 1, 2), {4}, "bilinear") end,
      "mode \"bilinear\" needs a 4-D attr")
end)

-- ------------------------------------------------------------ NoiseTunnel

describe("NoiseTunnel (float64 properties)", function()
  it("on a linear model: smoothgrad is the weight row, smoothgrad_sq its square, vargrad 0", function()
    local f, W = linear64()
    local x = farol.randn(3, 4, "float64")
    local nt = farol.NoiseTunnel(farol.Saliency(f))
    local row = W[2]:unsqueeze(1):expand(3, 4)
    H.close(nt:attribute(x, {target = 2, abs = false, nt_samples = 7}), row, 1e-12, 1e-12)
    H.close(nt:attribute(x, {target = 2, abs = false, nt_type = "smoothgrad_sq"}), row * row, 1e-12, 1e-12)
    assert.is_true(max_abs(nt:attribute(x, {target = 2, abs = false, nt_type = "vargrad", stdevs = 2.0})) < 1e-12)
  end)

  it("on a sum of squares: smoothgrad is 2x and vargrad 4 sigma^2, within sampling error", function()
    farol.manual_seed(3)
    local f = function(x) return (x * x):sum(2) end
    local x = farol.randn(3, 5, "float64")
    local nt = farol.NoiseTunnel(farol.Saliency(f))
    local n, sigma = 2000, 0.5
    local sg = nt:attribute(x, {abs = false, nt_samples = n, nt_samples_batch_size = 500, stdevs = sigma})
    -- the mean of 2 (x + e) over n samples: standard error 2 sigma / sqrt(n) = 0.022
    assert.is_true(max_abs(sg - x * 2) < 0.12)
    local vg = nt:attribute(x, {abs = false, nt_samples = n, nt_type = "vargrad", stdevs = sigma})
    -- the variance of 2e is 4 sigma^2 = 1; its estimate's standard error is ~0.032
    assert.is_true(max_abs(vg - 4 * sigma * sigma) < 0.16)
  end)

  it("chunks the samples as Captum: 20 in chunks of 7 on 3 examples = 21, 21, 18 rows", function()
    local f, _, rows = linear64()
    local nt = farol.NoiseTunnel(farol.Saliency(f))
    nt:attribute(farol.randn(3, 4, "float64"), {target = 1, nt_samples = 20, nt_samples_batch_size = 7})
    assert.same({21, 21, 18}, rows)
    for i = #rows, 1, -1 do rows[i] = nil end
    nt:attribute(farol.randn(3, 4, "float64"), {target = 1})   -- 5 samples, one chunk
    assert.same({15}, rows)
    for i = #rows, 1, -1 do rows[i] = nil end
    nt:attribute(farol.randn(3, 4, "float64"), {target = 1, nt_samples = 4, nt_samples_batch_size = 9})
    assert.same({12}, rows)
  end)

  it("repeats exactly after farol.manual_seed, and differs with another seed", function()
    local f = function(x) return (x * x * x):sum(2) end
    local x = farol.randn(2, 3, "float64")
    local nt = farol.NoiseTunnel(farol.Saliency(f))
    farol.manual_seed(42)
    local a = nt:attribute(x, {abs = false})
    farol.manual_seed(42)
    local b = nt:attribute(x, {abs = false})
    H.close(a, b, 0, 0)
    farol.manual_seed(43)
    assert.is_true(max_abs(a - nt:attribute(x, {abs = false})) > 1e-6)
  end)

  it("takes one stdev per input", function()
    local f = function(a, b) return (a * a):sum(2) + (b * b):sum(2) end
    local x1, x2 = farol.randn(2, 3, "float64"), farol.randn(2, 2, "float64")
    local r = farol.NoiseTunnel(farol.Saliency(f)):attribute({x1, x2},
      {abs = false, stdevs = {0.0, 1.0}, nt_type = "vargrad", nt_samples = 6})
    assert.is_true(max_abs(r[1]) < 1e-12)       -- no noise on input 1
    assert.is_true(max_abs(r[2]) > 1e-3)
  end)

  it("wraps IntegratedGradients, with deltas per sample and baselines drawn from a distribution", function()
    local f = linear64()
    local x = farol.randn(2, 4, "float64")
    local nt = farol.NoiseTunnel(farol.IntegratedGradients(f))
    local a, d = nt:attribute(x, {target = 3, nt_samples = 3, return_convergence_delta = true})
    assert.same({2, 4}, a:size())
    assert.same({6}, d:size())
    assert.is_true(max_abs(d) < 1e-6)   -- linear: exact up to Captum's float32 step sizes
    local b = nt:attribute(x, {target = 3, nt_samples = 3, baselines = farol.randn(5, 4, "float64"),
                               draw_baseline_from_distrib = true})
    assert.same({2, 4}, b:size())
  end)
end)

-- ------------------------------------------------------------ many targets

describe("many targets in one call", function()
  it("Saliency, InputXGradient, IntegratedGradients: K x N x ... equal to K separate calls", function()
    local f, _, rows = linear64()
    local g = function(x) return f(x):tanh() end
    local x = farol.randn(2, 4, "float64")
    for _, method in ipairs({farol.Saliency(g), farol.InputXGradient(g), farol.IntegratedGradients(g)}) do
      local all = method:attribute(x, {targets = {1, 3, {2, 1}}})
      assert.same({3, 2, 4}, all:size())
      H.close(all[1], method:attribute(x, {target = 1}), 1e-12, 1e-12)
      H.close(all[2], method:attribute(x, {target = 3}), 1e-12, 1e-12)
      H.close(all[3], method:attribute(x, {target = {2, 1}}), 1e-12, 1e-12)
    end
    -- one expanded batch: IG with 50 steps runs one forward of 3 x 2 x 50 rows
    for i = #rows, 1, -1 do rows[i] = nil end
    farol.IntegratedGradients(g):attribute(x, {targets = {1, 2, 3}})
    assert.same({300}, rows)
  end)

  it("deltas are K x N; several inputs give an array of K x N x ... tensors", function()
    local t = H.load("methods/ig_two_inputs.safetensors")
    local m = models.two_input():to("float64")
    m:load_state_dict({w1 = t.w1, w2 = t.w2})
    local ig = farol.IntegratedGradients(m)
    local opts = {baselines = {t["baseline.1"], 0.5}, additional_forward_args = {1.5}, n_steps = 24,
                  method = "riemann_trapezoid", return_convergence_delta = true}
    opts.targets = {{3, 1, 2}, 2}
    local a, d = ig:attribute({t["input.1"], t["input.2"]}, opts)
    assert.same({2, 3, 4}, a[1]:size())
    assert.same({2, 3, 3}, a[2]:size())
    assert.same({2, 3}, d:size())
    H.close(a[1][1], t["expected.1"], 1e-9, 1e-11)
    H.close(a[2][1], t["expected.2"], 1e-9, 1e-11)
    H.close(d[1], t.delta, 1e-9, 1e-11)
    opts.targets = nil
    opts.target = 2
    local a2, d2 = ig:attribute({t["input.1"], t["input.2"]}, opts)
    H.close(a[1][2], a2[1], 1e-12, 1e-12)
    H.close(d[2], d2, 1e-12, 1e-12)
  end)

  it("layer methods: K x the layer attribution", function()
    local model, t = load_case("layer_gradcam_signed")
    local x = t["input.1"]
    local cam = farol.LayerGradCam(model, model[8])
    local all = cam:attribute(x, {targets = {7, 2}})
    assert.same({2, 2, 1, 16, 16}, all:size())
    H.close(all[1], t["expected.1"], 1e-4, 1e-5)
    H.close(all[2], cam:attribute(x, 2), 1e-4, 1e-5)
  end)

  bad("target and targets together", function()
    return farol.Saliency((linear64())):attribute(farol.randn(2, 4, "float64"), {target = 1, targets = {1}})
  end, "farol: Saliency: give target or targets, not both")
  bad("an empty targets array", function()
    return farol.Saliency((linear64())):attribute(farol.randn(2, 4, "float64"), {targets = {}})
  end, "farol: Saliency: targets must be a non-empty array of targets, got table")
  bad("a per-example entry of the wrong length", function()
    return farol.Saliency((linear64())):attribute(farol.randn(2, 4, "float64"), {targets = {1, {1, 2, 3}}})
  end, "farol: Saliency: targets[2] has 3 entries but the batch has 2 examples")
end)

-- ------------------------------------------------- hooks and overrides

local function n_hooks(m)
  local h = rawget(m, "_forward_hooks")
  return h and #h._order or 0
end

describe("forward hooks", function()
  it("see the module, its inputs and output; a returned value replaces the output; remove() ends it", function()
    local lin = nn.Linear(3, 2)
    local seen
    local h = lin:register_forward_hook(function(m, inputs, out)
      seen = {m, inputs.n, inputs[1], out}
      return out * 0
    end)
    local x = farol.randn(4, 3)
    local y = lin(x)
    assert.equals(lin, seen[1])
    assert.equals(1, seen[2])
    assert.equals(x, seen[3])
    assert.same({4, 2}, seen[4]:size())
    assert.equals(0, max_abs(y))
    h:remove()
    h:remove()   -- twice is harmless
    assert.is_true(max_abs(lin(x)) > 0)
    assert.equals(0, n_hooks(lin))
  end)
  bad("a hook that is not a function", function() return nn.ReLU():register_forward_hook(3) end,
      "farol: register_forward_hook: expects a function, got number")
end)

describe("hooks, ReLU overrides and the user's tensors after a call", function()
  local function failing_cnn()
    local model = models.cnn_small()
    local boom = false
    local wrapped = nn.Module{net = model, forward = function(self, x)
      local y = self.net(x)
      if boom then error("farol: test: forward failed on purpose", 0) end
      return y
    end}
    return wrapped, model, function(on) boom = on end
  end

  it("GuidedBackprop and Deconvolution put nn.ReLU back, also when the forward raises", function()
    local wrapped, model, set = failing_cnn()
    local x = farol.randn(2, 1, 8, 8)
    for _, name in ipairs({"GuidedBackprop", "Deconvolution"}) do
      set(true)
      H.fails(function() return farol[name](wrapped):attribute(x, 3) end, "forward failed on purpose")()
      set(false)
      farol[name](wrapped):attribute(x, 3)
      assert.is_nil(rawget(model[2], "forward"))
      assert.is_nil(rawget(model[5], "forward"))
    end
    -- the plain gradient again afterwards
    local sal = farol.Saliency(wrapped):attribute(x, {target = 3, abs = false})
    local direct = farol.Saliency(function(v) return model(v) end):attribute(x, {target = 3, abs = false})
    H.close(sal, direct, 0, 0)
  end)

  it("functional relu is untouched: GuidedBackprop of a model without nn.ReLU is the gradient", function()
    local lin1, lin2 = nn.Linear(4, 6), nn.Linear(6, 3)
    local model = nn.Module{a = lin1, b = lin2, forward = function(self, x) return self.b(self.a(x):relu()) end}
    local x = farol.randn(5, 4)
    H.close(farol.GuidedBackprop(model):attribute(x, 2),
            farol.Saliency(model):attribute(x, {target = 2, abs = false}), 0, 0)
  end)

  it("layer methods remove their hooks, also when the forward raises", function()
    local wrapped, model, set = failing_cnn()
    local x = farol.randn(2, 1, 8, 8)
    set(true)
    H.fails(function() return farol.LayerGradCam(wrapped, model[4]):attribute(x, 3) end, "on purpose")()
    H.fails(function() return farol.GuidedGradCam(wrapped, model[4]):attribute(x, 3) end, "on purpose")()
    H.fails(function()
      return farol.LayerIntegratedGradients(wrapped, model[4]):attribute(x, {target = 3, n_steps = 2})
    end, "on purpose")()
    assert.equals(0, n_hooks(model[4]))
    assert.is_nil(rawget(model[2], "forward"))
    set(false)
    farol.LayerIntegratedGradients(wrapped, model[4]):attribute(x, {target = 3, n_steps = 3})
    assert.equals(0, n_hooks(model[4]))
  end)

  it("leaves the inputs, baselines and parameters as they were", function()
    local model = models.softmax_mlp():to("float64")
    local x = farol.randn(3, 5, "float64")
    local b = farol.randn(1, 5, "float64")
    local x0, b0 = x:clone(), b:clone()
    farol.IntegratedGradients(model):attribute(x, {target = 2, baselines = b, return_convergence_delta = true})
    farol.NoiseTunnel(farol.InputXGradient(model)):attribute(x, {target = 2})
    farol.InputXGradient(model):attribute(x, {targets = {1, 2}})
    H.close(x, x0, 0, 0)
    H.close(b, b0, 0, 0)
    assert.is_false(x:requires_grad())
    assert.is_nil(x.grad)
    for _, p in ipairs(model:parameters()) do assert.is_nil(p.grad) end
  end)

  it("the second argument: {} is an options table, an array is a target", function()
    local f = linear64()
    local x = farol.randn(2, 4, "float64")
    H.fails(function() return farol.InputXGradient(f):attribute(x, {}) end, "a target is needed")()
    H.close(farol.InputXGradient(f):attribute(x, {1, 3}),
            farol.InputXGradient(f):attribute(x, {target = {1, 3}}), 0, 0)
  end)
end)

-- --------------------------------------------------------- IntegratedGradients details

describe("IntegratedGradients details", function()
  it("internal_batch_size smaller than the batch: one step per chunk (Captum's rule)", function()
    local f, _, rows = linear64()
    local g = function(x) return f(x):sin() end
    local x = farol.randn(4, 4, "float64")
    local whole = farol.IntegratedGradients(g):attribute(x, {target = 2, n_steps = 6})
    for i = #rows, 1, -1 do rows[i] = nil end
    local chunked = farol.IntegratedGradients(g):attribute(x, {target = 2, n_steps = 6, internal_batch_size = 3})
    assert.same({4, 4, 4, 4, 4, 4}, rows)
    H.close(chunked, whole, 1e-12, 1e-14)
    for i = #rows, 1, -1 do rows[i] = nil end
    farol.IntegratedGradients(g):attribute(x, {target = 2, n_steps = 6, internal_batch_size = 9})
    assert.same({8, 8, 8}, rows)   -- 9 // 4 = 2 steps per chunk
  end)

  it("multiply_by_inputs = false gives the integrated gradient alone", function()
    local f, W = linear64()
    local x = farol.randn(2, 4, "float64")
    local a = farol.IntegratedGradients(f, {multiply_by_inputs = false}):attribute(x, 3)
    H.close(a, W[3]:unsqueeze(1):expand(2, 4), 1e-6, 1e-7)   -- step sizes are float32, as Captum's
  end)

  it("LayerIntegratedGradients on float inputs with the default baselines", function()
    local model = models.softmax_mlp():to("float64")
    local x = farol.randn(3, 5, "float64")
    local a, d = farol.LayerIntegratedGradients(model, model.lin1):attribute(x, {target = 4,
      return_convergence_delta = true})
    assert.same({3, 20}, a:size())
    assert.is_true(max_abs(d) < 1e-3)
  end)
end)

-- ------------------------------------------------------------ bad input

describe("bad input names the method and the option", function()
  local f = linear64()
  local x = farol.randn(2, 4, "float64")
  local ig = farol.IntegratedGradients(f)
  local cnn = models.cnn_small()
  local img = farol.randn(2, 1, 8, 8)
  local text = models.text_classifier():to("float64")
  local tokens = farol.tensor({{1, 2, 3}, {4, 5, 6}}, "int64")

  bad("a misspelt option", function() return ig:attribute(x, {targte = 2}) end,
      "farol: IntegratedGradients: unknown option 'targte'")
  bad("a non-string key in an options table", function() return ig:attribute(x, {target = 1, 5}) end,
      "farol: IntegratedGradients: unknown option 1")
  bad("an option of another method", function() return farol.InputXGradient(f):attribute(x, {target = 1, abs = true}) end,
      "farol: InputXGradient: unknown option 'abs'")
  bad("arguments after the options table", function() return ig:attribute(x, {target = 1}, 3) end,
      "farol: IntegratedGradients: no arguments are taken after the options table (got 1 more)")
  bad("stray positional arguments", function() return ig:attribute(x, 1, 2) end,
      "farol: IntegratedGradients:attribute: at most 2 arguments (inputs, target), got 3")
  bad("attribute called with a dot", function() return ig.attribute(x, 1) end,
      "farol: IntegratedGradients:attribute: call it as obj:attribute(inputs, ...)")
  bad("n_steps 0", function() return ig:attribute(x, {target = 1, n_steps = 0}) end,
      "farol: IntegratedGradients: n_steps must be an integer >= 1, got 0")
  bad("n_steps not an integer", function() return ig:attribute(x, {target = 1, n_steps = 2.5}) end,
      "farol: IntegratedGradients: n_steps must be an integer >= 1, got 2.5")
  bad("n_steps 1 for a Riemann sum", function() return ig:attribute(x, {target = 1, n_steps = 1, method = "riemann_left"}) end,
      "farol: IntegratedGradients: n_steps must be at least 2 for riemann_left, got 1")
  bad("an unknown method", function() return ig:attribute(x, {target = 1, method = "simpson"}) end,
      "farol: IntegratedGradients: method must be one of \"gausslegendre\", \"riemann_right\", \"riemann_left\", \"riemann_middle\", \"riemann_trapezoid\", got \"simpson\"")
  bad("internal_batch_size 0", function() return ig:attribute(x, {target = 1, internal_batch_size = 0}) end,
      "farol: IntegratedGradients: internal_batch_size must be an integer >= 1, got 0")
  bad("return_convergence_delta not a boolean", function() return ig:attribute(x, {target = 1, return_convergence_delta = 1}) end,
      "farol: IntegratedGradients: return_convergence_delta must be a boolean, got number")
  bad("a baseline that does not broadcast", function() return ig:attribute(x, {target = 1, baselines = farol.zeros(3, 4, "float64")}) end,
      "farol: IntegratedGradients: baseline 1 has shape [3, 4] but input 1 has shape [2, 4]; a baseline must match the input or have a batch of 1")
  bad("a baseline with other features", function() return ig:attribute(x, {target = 1, baselines = farol.zeros(1, 5, "float64")}) end,
      "farol: IntegratedGradients: baseline 1 has shape [1, 5]")
  bad("a baseline of the wrong type", function() return ig:attribute(x, {target = 1, baselines = "zero"}) end,
      "farol: IntegratedGradients: baselines must be nil, a number, a tensor or an array of them (one per input), got \"zero\"")
  bad("baselines for the wrong number of inputs", function() return ig:attribute(x, {target = 1, baselines = {0, 0}}) end,
      "farol: IntegratedGradients: baselines has 2 entries but there are 1 inputs (give one per input)")
  bad("an unknown constructor option", function() return farol.IntegratedGradients(f, {multiply = true}) end,
      "farol: IntegratedGradients: unknown option 'multiply'")
  bad("multiply_by_inputs not a boolean", function() return farol.IntegratedGradients(f, {multiply_by_inputs = "yes"}) end,
      "farol: IntegratedGradients: multiply_by_inputs must be a boolean, got string")
  bad("a forward that is not callable", function() return farol.IntegratedGradients(3) end,
      "farol: IntegratedGradients: forward_func must be a function or a callable table, got number")
  bad("an int64 input to a non-layer method", function() return ig:attribute(tokens, 1) end,
      "farol: IntegratedGradients: input 1 is int64; attributions need floating inputs (float32 or float64)")
  bad("a target out of range", function() return ig:attribute(x, 9) end,
      "farol: IntegratedGradients: target index 9 is out of range for output dim 2 of size 3")
  bad("a target per example of the wrong length", function() return ig:attribute(x, {1, 2, 3}) end,
      "farol: IntegratedGradients: the per-example target has 3 entries but the batch has 2 examples")
  bad("additional_forward_args.n out of range", function()
    return farol.InputXGradient(f):attribute(x, {target = 1, additional_forward_args = {n = -1}})
  end, "farol: InputXGradient: additional_forward_args.n must be an integer from 0 to 4096, got -1")

  local nt = farol.NoiseTunnel(farol.Saliency(f))
  bad("an unknown nt_type", function() return nt:attribute(x, {target = 1, nt_type = "smooth"}) end,
      "farol: NoiseTunnel: nt_type must be one of \"smoothgrad\", \"smoothgrad_sq\", \"vargrad\", got \"smooth\"")
  bad("nt_samples 0", function() return nt:attribute(x, {target = 1, nt_samples = 0}) end,
      "farol: NoiseTunnel: nt_samples must be an integer >= 1, got 0")
  bad("nt_samples_batch_size 0", function() return nt:attribute(x, {target = 1, nt_samples_batch_size = 0}) end,
      "farol: NoiseTunnel: nt_samples_batch_size must be an integer >= 1, got 0")
  bad("a negative stdev", function() return nt:attribute(x, {target = 1, stdevs = -1}) end,
      "farol: NoiseTunnel: stdevs[1] must be a finite number >= 0, got -1")
  bad("stdevs of the wrong count", function() return nt:attribute(x, {target = 1, stdevs = {1, 2}}) end,
      "farol: NoiseTunnel: stdevs has 2 values but there are 1 inputs (give one number, or one per input)")
  bad("stdevs of the wrong type", function() return nt:attribute(x, {target = 1, stdevs = "1"}) end,
      "farol: NoiseTunnel: stdevs must be a number or an array of numbers (one per input), got \"1\"")
  bad("draw_baseline_from_distrib not a boolean", function() return nt:attribute(x, {target = 1, draw_baseline_from_distrib = 1}) end,
      "farol: NoiseTunnel: draw_baseline_from_distrib must be a boolean, got number")
  bad("draw_baseline_from_distrib on a method without baselines", function()
    return nt:attribute(x, {target = 1, draw_baseline_from_distrib = true})
  end, "farol: NoiseTunnel: draw_baseline_from_distrib needs a method that takes baselines (Saliency does not)")
  bad("an option the wrapped method does not take", function() return nt:attribute(x, {target = 1, n_steps = 3}) end,
      "farol: NoiseTunnel: unknown option 'n_steps'")
  bad("the wrapped method's option checked", function() return nt:attribute(x, {target = 1, abs = "no"}) end,
      "farol: NoiseTunnel: abs must be a boolean, got string")
  bad("a method that is not an attribution method", function() return farol.NoiseTunnel(f) end,
      "farol: NoiseTunnel: method must be a farol attribution method")

  bad("GuidedBackprop of a function", function() return farol.GuidedBackprop(f) end,
      "farol: GuidedBackprop: model must be a farol.nn module (its nn.ReLU modules are overridden), got function")
  bad("Deconvolution with an option it does not take", function() return farol.Deconvolution(cnn):attribute(img, {target = 1, abs = true}) end,
      "farol: Deconvolution: unknown option 'abs'")

  bad("a layer that is not a submodule", function() return farol.LayerGradCam(cnn, nn.ReLU()) end,
      "farol: LayerGradCam: layer ReLU is not a submodule of the model")
  bad("a layer that is not a module", function() return farol.LayerGradCam(cnn, 3) end,
      "farol: LayerGradCam: layer must be a farol.nn module, got number")
  bad("relu_attributions not a boolean", function() return farol.LayerGradCam(cnn, cnn[4]):attribute(img, {target = 1, relu_attributions = 1}) end,
      "farol: LayerGradCam: relu_attributions must be a boolean, got number")
  bad("attribute_to_layer_input not a boolean", function() return farol.LayerGradCam(cnn, cnn[4]):attribute(img, {target = 1, attribute_to_layer_input = "x"}) end,
      "farol: LayerGradCam: attribute_to_layer_input must be a boolean, got string")
  bad("a layer the forward never calls", function()
    local unused = nn.Linear(2, 2)
    local m = nn.Module{net = cnn, spare = unused, forward = function(self, v) return self.net(v) end}
    return farol.LayerGradCam(m, unused):attribute(img, 1)
  end, "farol: LayerGradCam: the layer did not run during the forward")
  bad("an unknown interpolate_mode", function() return farol.GuidedGradCam(cnn, cnn[4]):attribute(img, {target = 1, interpolate_mode = "cubic"}) end,
      "farol: GuidedGradCam: interpolate_mode must be one of \"nearest\", \"bilinear\", \"linear\", \"area\", got \"cubic\"")
  bad("LayerIntegratedGradients on int64 inputs without baselines", function()
    return farol.LayerIntegratedGradients(text, text.embedding):attribute(tokens, 1)
  end, "farol: LayerIntegratedGradients: input 1 is int64 (token ids): give its baselines")
  bad("LayerIntegratedGradients with a fractional token baseline", function()
    return farol.LayerIntegratedGradients(text, text.embedding):attribute(tokens, {target = 1, baselines = 1.5})
  end, "farol: LayerIntegratedGradients: baseline 1 must be an integer for the int64 input, got 1.5")
  bad("LayerIntegratedGradients with attribute_to_layer_input (not supported)", function()
    return farol.LayerIntegratedGradients(text, text.embedding):attribute(tokens, {target = 1, baselines = 1, attribute_to_layer_input = true})
  end, "farol: LayerIntegratedGradients: unknown option 'attribute_to_layer_input'")
end)

describe("docs/API.md", function()
  it("the gradient family's example runs as written", function()
    local f = assert(io.open(H.fixtures .. "/../../docs/API.md"))
    local doc = f:read("a")
    f:close()
    local at = assert(doc:find("### The rest of the gradient family", 1, true))
    local code = assert(doc:match("```lua\n(.-)```", at))
    local env = setmetatable({farol = farol}, {__index = _G})
    local _, delta, _, up, _, la, _, all = assert(load(code .. "\nreturn a, delta, cam, up, ggc, la, ld, all",
                                                      "=API.md", "t", env))()
    assert.same({3, 2, 1, 8, 8}, all:size())
    assert.same({2, 1, 8, 8}, up:size())
    assert.same({2, 3, 8}, la:size())
    assert.same({2}, delta:size())
  end)
end)

describe("NoiseTunnel with many targets", function()
  it("gives K x N attributions and K x N x nt_samples deltas", function()
    local f = linear64()
    local x = farol.randn(2, 4, "float64")
    local nt = farol.NoiseTunnel(farol.IntegratedGradients(f))
    farol.manual_seed(5)
    local a, d = nt:attribute(x, {targets = {1, 3}, nt_samples = 3, nt_samples_batch_size = 2,
                                  return_convergence_delta = true, n_steps = 8})
    assert.same({2, 2, 4}, a:size())
    assert.same({2, 2, 3}, d:size())
    assert.is_true(max_abs(d) < 1e-6)
  end)
end)

describe("LayerGradCam on token ids", function()
  it("takes int64 inputs and matches the gradient taken by hand", function()
    farol.manual_seed(9)
    local text = models.text_classifier():to("float64")
    local tokens = farol.tensor({{1, 5, 9, 2}, {3, 3, 7, 50}}, "int64")
    local cam = farol.LayerGradCam(text, text.conv):attribute(tokens, 3)
    -- by hand: h = conv(embedding), out = fc(max over time of relu(h))
    local h = text.conv(text.embedding(tokens):transpose(2, 3))
    local out = text.fc(h:relu():amax(3))
    local g = farol.grad(out:select(2, 3):sum(), h)
    local expected = (g:mean(3):unsqueeze(3) * h:detach()):sum(2):unsqueeze(2)
    assert.same({2, 1, 4}, cam:size())
    H.close(cam, expected, 1e-12, 1e-12)
  end)
end)
