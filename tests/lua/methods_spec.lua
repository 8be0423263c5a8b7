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

function models.softmax_mlp()
  return nn.Module{
    lin1 = nn.Linear(5, 20), lin2 = nn.Linear(20, 20), lin3 = nn.Linear(20, 10),
    forward = function(self, x)
      local h = self.lin1(x):relu()
      h = self.lin2(h):relu()
      return farol.softmax(self.lin3(h), 2)
    end,
  }
end

function models.two_input()
  local m = nn.Module{forward = function(self, x1, x2, scale)
    return farol.matmul(x1, self.w1:t()):tanh() * scale + farol.matmul(x2 * x2, self.w2:t())
  end}
  m:parameter("w1", farol.zeros(3, 4))
  m:parameter("w2", farol.zeros(3, 3))
  return m
end

function models.cnn_small()
  return nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 10))
end

function models.cnn_cifar()
  return nn.Sequential(
    nn.Conv2d(3, 32, 3, {padding = 1}), nn.ReLU(), nn.Conv2d(32, 32, 3, {padding = 1}), nn.ReLU(),
    nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, {padding = 1}), nn.ReLU(),
    nn.Conv2d(64, 64, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10), nn.Softmax(2))
end

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
