-- farol.models against torchvision (tests/fixtures/models, made by
-- tests/tools/make_model_fixtures.py): the state_dict keys in torchvision's
-- order, then eval-mode logits and Saliency of a 2x3x64x64 batch, in float64
-- (tight) and float32 (float32 tolerance).  Convolution and linear weights
-- are made by the same formula as the generator; BatchNorm tensors are
-- loaded from the fixture.
local farol = require("farol")
local H = require("helpers")

local split = H.split

-- the generator's formula: trunc(frac(sin(i * 12.9898 + seed / 1000) *
-- 43758.5453) * 4096) / 4096 * scale over the flat index i, in float64, then
-- float32 (to("int64") truncates)
local function seed(name)
  local s = 0
  for i = 1, #name do s = s + name:byte(i) * i end
  return s % 9973
end

local function formula(name, shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local scale = #shape >= 2 and math.sqrt(6 / (n // shape[1])) or 0.1
  local i = farol.arange(0, n):to("float64")
  local y = (i * 12.9898 + seed(name) / 1000):sin() * 43758.5453
  local u = y - y:to("int64"):to("float64")  -- frac, keeping the sign
  u = (u * 4096):to("int64"):to("float64") / 4096
  return (u * scale):to("float32"):view(shape)
end

-- the model of a fixture, weights loaded (strictly), in eval mode
local function build(t, md)
  local m = assert(load("return " .. md.build, "=build", "t", {models = farol.models}))()
  local sd = {}
  for name, p in pairs(m:state_dict()) do sd[name] = t["sd." .. name] or formula(name, p:size()) end
  m:load_state_dict(sd)
  return m:eval()
end

local function keys(m)
  local out = {}
  for name in m:named_parameters() do out[#out + 1] = name end
  return out
end

local function max_abs(x) return x:abs():max():item() end

local cases = {"resnet18", "mobilenet_v2", "mobilenet_v2_w075", "squeezenet1_1", "densenet121", "vgg11_bn_narrow"}

describe("models against torchvision", function()
  for _, name in ipairs(cases) do
    describe(name, function()
      local t, md = H.load("models/" .. name .. ".safetensors")
      local target = t.target:totable()
      local model  -- built by the first test that needs it
      local function m(...)
        model = model or build(t, md)
        if select("#", ...) == 0 then return model end
        return model(...)
      end

      it("has torchvision's state_dict keys in order", function()
        local sd_keys = {}
        for _, e in ipairs(split(md.keys)) do sd_keys[#sd_keys + 1] = e end
        local got, params = {}, {}
        for _, k in ipairs(keys(m())) do params[k] = true end
        -- state_dict order: per module, parameters then buffers
        for _, k in ipairs(sd_keys) do if params[k] then got[#got + 1] = k end end
        assert.are.same(got, keys(m()))
        local n = 0
        for _ in pairs(m():state_dict()) do n = n + 1 end
        assert.are.equal(#sd_keys, n)
      end)

      it("matches logits and Saliency in float32", function()
        local x = t.input
        local logits = farol.no_grad(m, x)
        H.close(logits, t.logits, 1e-4, 1e-4 * max_abs(t.logits), "logits")
        local sal = farol.Saliency(m):attribute(x, target)
        local scale = max_abs(t.saliency)
        assert.is_true(scale > 0)
        -- float32 sums in another order may put a ReLU/ReLU6 input that is
        -- within rounding of a corner on its other side, which changes the
        -- gradient of the few pixels behind it: at most 0.1% of the
        -- elements may be off, and by at most 5% of the largest value
        -- (float64 above/below has no such slack)
        local err = (sal - t.saliency):abs()
        local off = err:gt(t.saliency:abs() * 1e-3 + 1e-4 * scale):sum():item()
        assert.is_true(off <= 0.001 * err:numel(), string.format("%s: %d of %d saliency elements are off",
                                                                 name, off, err:numel()))
        assert.is_true(max_abs(err) <= 0.05 * scale, string.format("%s: saliency error %g of %g",
                                                                   name, max_abs(err), scale))
      end)

      it("matches logits and Saliency in float64", function()
        m():to("float64")
        local x = t.input:to("float64")
        H.close(farol.no_grad(m, x), t.logits_f64, 1e-9, 1e-9, "logits")
        local sal = farol.Saliency(m):attribute(x, target)
        H.close(sal, t.saliency_f64, 1e-7, 1e-9 * max_abs(t.saliency_f64), "saliency")
        m():to("float32")
        model = nil  -- collectable once the last test of the model is done
      end)
    end)
  end
end)

describe("model constructors", function()
  local M = farol.models

  it("take torchvision's keyword arguments and refuse others", function()
    H.fails(function() M.mobilenet_v2{num_class = 10} end,
            "farol: models.mobilenet_v2: unknown option 'num_class' (valid: num_classes, width_mult, " ..
            "inverted_residual_setting, round_nearest, dropout)")()
    H.fails(function() M.mobilenet_v2{width_mult = 0} end,
            "farol: models.mobilenet_v2: width_mult must be a positive number, got 0")()
    H.fails(function() M.mobilenet_v2{inverted_residual_setting = {{1, 16, 1}}} end,
            "farol: models.mobilenet_v2: inverted_residual_setting[1] must be {t, c, n, s}")()
    H.fails(function() M.squeezenet1_1{num_classes = 0} end,
            "farol: models.SqueezeNet: num_classes must be an integer >= 1, got 0")()
    H.fails(function() M.SqueezeNet("1_2") end, "farol: models.SqueezeNet: version must be \"1_0\" or \"1_1\", got 1_2")()
    H.fails(function() M.densenet121{growth_rate = 8} end,
            "farol: models.densenet121: unknown option 'growth_rate' (valid: num_classes, bn_size, drop_rate, " ..
            "memory_efficient)")()
    H.fails(function() M.DenseNet{block_config = {2, "x"}} end,
            "farol: models.DenseNet: block_config[2] must be an integer >= 1, got x")()
    H.fails(function() M.vgg11_bn{width = 64} end,
            "farol: models.vgg11_bn: unknown option 'width' (valid: num_classes, init_weights, dropout)")()
    H.fails(function() M.squeezenet1_1(10, 2) end,
            "farol: models.squeezenet1_1: takes one argument (num_classes or an options table), got 1 more")()
    H.fails(function() M.resnet18(10, {}) end,
            "farol: models.resnet18: takes one argument (num_classes or an options table), got 1 more")()
    H.fails(function() M.densenet121(10, nil) end,
            "farol: models.densenet121: takes one argument (num_classes or an options table), got 1 more")()
    H.fails(function() M.VGG(5) end, "farol: models.VGG: features must be a module, got number")()
    H.fails(function() M.vgg_layers({64, "N"}, true) end, "farol: models.vgg_layers: cfg[2] must be an integer >= 1, got N")()
  end)

  it("build narrowed configurations as torchvision does", function()
    local m = M.mobilenet_v2{num_classes = 3, width_mult = 0.35}
    local sd = m:state_dict()
    -- torchvision: _make_divisible(32 * 0.35, 8) = 16, last channel stays 1280
    assert.are.same({16, 3, 3, 3}, sd["features.0.0.weight"]:size())
    assert.are.same({3, 1280}, sd["classifier.1.weight"]:size())
    local d = M.DenseNet{growth_rate = 4, block_config = {1, 2}, num_init_features = 8, bn_size = 2, num_classes = 5}
    sd = d:state_dict()
    assert.are.same({8, 10, 1, 1}, sd["features.denseblock2.denselayer2.conv1.weight"]:size())  -- 8 + 4 -> 6, + 4
    assert.are.same({5, 14}, sd["classifier.weight"]:size())
    assert.are.same({2, 5}, d(farol.randn(2, 3, 32, 32)).shape)
    local v = M.VGG(M.vgg_layers({4, "M", 8, "M"}, false), {num_classes = 2, width = 6, init_weights = false})
    assert.are.same({6, 8 * 49}, v:state_dict()["classifier.0.weight"]:size())
    assert.are.same({1, 2}, v(farol.randn(1, 3, 16, 16)).shape)
  end)
end)
