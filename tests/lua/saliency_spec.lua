-- Captum conformance: every tests/fixtures/saliency case, abs and signed,
-- positional and options-table call forms, and the equivalent target form
-- where the file gives one.  Each model is a farol port of the file's
-- description, loaded with the file's PyTorch state_dict (strict).
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

local models = {}

function models.linear_scalar() return nn.Linear(5, 1) end

local softmax_mlp = H.softmax_mlp
models.softmax_mlp = softmax_mlp
models.softmax_mlp_per_example = softmax_mlp
models.softmax_mlp_f64 = function() return softmax_mlp():to("float64") end

function models.multi_input()
  local m = nn.Module{forward = function(self, x1, x2, x3)
    local a = farol.matmul(x1, self.w1:t()):relu()
    local b = (x2:unsqueeze(2) * self.w2:unsqueeze(1)):sum(4):sum(3)
    local c = x3:narrow(2, 1, 1) ^ 2 * self.c
    return a + b + c
  end}
  m:parameter("w1", farol.zeros(2, 3))
  m:parameter("w2", farol.zeros(2, 4, 2))
  m:parameter("c", farol.zeros(2))
  return m
end

function models.additional_args()
  return function(x, scale, mask, mode)
    local h = (x * scale):tanh() * mask
    if mode == "mean" then return h:mean(2) end
    return h:sum(2)
  end
end

function models.single_additional_arg()
  return function(x, w) return farol.matmul(x, w):sigmoid() end
end

local function linear_3d()
  return nn.Module{linear = nn.Linear(6, 12), forward = function(self, x)
    return self.linear(x):view(x:size(1), 3, 4)
  end}
end
models.output_3d_tuple = linear_3d
models.output_3d_list_of_tuples = linear_3d

models.cnn_small = H.cnn_small
models.cnn_cifar = H.cnn_cifar

function models.ops_zoo()
  return nn.Module{
    ln = nn.LayerNorm(16), q = nn.Linear(16, 16), k = nn.Linear(16, 16), v = nn.Linear(16, 16),
    bn = nn.BatchNorm2d(4), head = nn.Linear(24, 3),
    forward = function(self, x)
      local n = x:size(1)
      local h = self.ln(x):gelu()
      local q, k, v = self.q(h), self.k(h), self.v(h)
      local a = farol.softmax(farol.matmul(q, k:transpose(-2, -1)) / 4, -1)
      local r = h + farol.matmul(a, v)
      local t = r:transpose(2, 3):contiguous():view(n, 16, 8):reshape(n, 4, 4, 8)
      t = self.bn(t)
      t = farol.adaptive_avg_pool2d(farol.avg_pool2d(t, 2), {1, 2}):flatten(2)
      local s = x:mean(2):sigmoid()
      local z = farol.cat({t, s}, 2)
      z = farol.log_softmax(z, 2):exp()
      z = z:sqrt() * 3 - 1
      return self.head(z)
    end,
  }:eval()
end

function models.transformer_tiny()
  return nn.Module{
    encoder = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0, batch_first = true}),
    head = nn.Linear(8, 2),
    forward = function(self, x, mask)
      local h = self.encoder(x, {src_key_padding_mask = mask:eq(0)})
      local m = mask:unsqueeze(-1)
      return self.head((h * m):sum(2) / m:sum(2))
    end,
  }:eval()
end

local cases = {"linear_scalar", "softmax_mlp", "softmax_mlp_per_example", "softmax_mlp_f64",
               "multi_input", "additional_args", "single_additional_arg", "output_3d_tuple",
               "output_3d_list_of_tuples", "cnn_small", "cnn_cifar", "ops_zoo", "transformer_tiny"}

local function weights_of(t, md)
  local w = {}
  for name in (md.weights or ""):gmatch("[^,]+") do w[name] = t[name] end
  return w
end

local function build(name, t, md)
  local model = models[name]()
  if nn.is_module(model) then
    model:load_state_dict(weights_of(t, md))
    model:eval()
  end
  return model
end

describe("Saliency matches Captum on", function()
  for _, name in ipairs(cases) do
    describe(name, function()
      local t, md = H.load("saliency/" .. name .. ".safetensors")
      local rtol, atol = tonumber(md.rtol), tonumber(md.atol)
      local model = build(name, t, md)
      local inputs = H.eval_lua(md.inputs_lua, t)
      local target = H.eval_lua(md.target_lua, t)
      local args = H.eval_lua(md.additional_forward_args_lua, t)
      local n_inputs = farol.is_tensor(inputs) and 1 or #inputs

      local function check(got, prefix)
        if n_inputs == 1 and farol.is_tensor(inputs) then
          H.close(got, t[prefix .. ".1"], rtol, atol, prefix .. ".1")
          assert.equals(inputs:dtype(), got:dtype())
        else
          assert.equals(n_inputs, #got)
          for k = 1, n_inputs do H.close(got[k], t[prefix .. "." .. k], rtol, atol, prefix .. "." .. k) end
        end
      end

      it("reproduces the forward output", function()
        local out
        if type(args) == "table" and getmetatable(args) == nil then
          out = model(inputs, table.unpack(args))
        elseif farol.is_tensor(inputs) then
          out = model(inputs, args)
        else
          out = model(table.unpack(inputs))
        end
        H.close(out, t.output, 1e-4, 1e-5 * math.max(1, tonumber(md.max_abs_expected) or 1), "output")
      end)

      it("abs = true, positional form", function()
        check(farol.Saliency(model):attribute(inputs, target, true, args), "expected")
      end)

      it("abs by default, options form", function()
        check(farol.Saliency(model):attribute(inputs, {target = target, additional_forward_args = args}),
              "expected")
      end)

      it("abs = false, both forms", function()
        local sal = farol.Saliency(model)
        check(sal:attribute(inputs, target, false, args), "expected_signed")
        check(sal:attribute(inputs, {target = target, abs = false, additional_forward_args = args}),
              "expected_signed")
      end)

      if md.target_lua_alt then
        it("accepts the equivalent target " .. md.target_lua_alt, function()
          local alt = H.eval_lua(md.target_lua_alt, t)
          check(farol.Saliency(model):attribute(inputs, alt, false, args), "expected_signed")
        end)
      end

      it("leaves the inputs as they were", function()
        local list = farol.is_tensor(inputs) and {inputs} or inputs
        local before = {}
        for k, x in ipairs(list) do before[k] = x:clone() end
        farol.Saliency(model):attribute(inputs, target, false, args)
        for k, x in ipairs(list) do
          H.close(x, before[k], 0, 0, "input " .. k)
          assert.is_false(x:requires_grad())
          assert.is_nil(x.grad)
        end
      end)
    end)
  end
end)
