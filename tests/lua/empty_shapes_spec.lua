-- Every op with a 0 in each dim of its inputs returns PyTorch's result at
-- once: the shapes, the values of non-empty results (a sum over nothing is
-- 0, a mean NaN, a product with K = 0 zeros) and the gradients, or an error
-- where PyTorch raises one.  The cases and PyTorch's answers come from
-- tests/fixtures/empty_shapes.lua (tests/tools/make_empty_shapes.py).
local farol = require("farol")
local H = require("helpers")

local cases = dofile(H.fixtures .. "/empty_shapes.lua")

local function fill(n, k)
  local v = {}
  for i = 0, n - 1 do v[i + 1] = ((i * 7 + k * 3) % 11 - 5) / 4 end
  return v
end

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

local function make(values, shape, dtype)
  if numel(shape) == 0 then return farol.zeros(shape, dtype) end
  if #shape == 0 then return farol.tensor(values[1], dtype) end
  return farol.tensor(values, dtype):reshape(shape)
end

local function input(spec, k, dtype)
  local n = numel(spec.shape)
  if spec.kind == "index" then return make(spec.values, spec.shape, "int64") end
  if spec.kind == "mask" then
    local v = {}
    for i = 0, n - 1 do v[i + 1] = i % 2 end
    return make(v, spec.shape, dtype)
  end
  local t = make(spec.values or fill(n, k - 1), spec.shape, dtype)
  if spec.grad then t:requires_grad(true) end
  return t
end

local function shape_str(s) return "[" .. table.concat(s, ", ") .. "]" end

-- float64 cases compare to PyTorch's float64 values closely; float32
-- ones (other kernels: BLAS sgemm, oneDNN) within float32 rounding
local tol = {float64 = {1e-9, 1e-12}, float32 = {1e-5, 1e-6}}

local function check(got, exp, what, dtype)
  assert(farol.is_tensor(got), what .. ": expected a tensor, got " .. type(got))
  assert.equals(shape_str(exp.shape), shape_str(got:size()), what .. ": shape")
  -- in float32 runs a float64 result is float32, unless the op makes float64 (to)
  if exp.dtype and (dtype == "float64" or exp.dtype == "int64") then
    assert.equals(exp.dtype, got:dtype(), what .. ": dtype")
  elseif exp.dtype then
    assert.are_not.equals("int64", got:dtype(), what .. ": dtype")
  end
  H.close(got, make(exp.values, exp.shape, "float64"), tol[dtype][1], tol[dtype][2], what)
end

describe("empty shapes", function()
  for _, c in ipairs(cases) do
   for _, dtype in ipairs({"float64", "float32"}) do
    it(c.name .. " (" .. c.lua .. ", " .. dtype .. ")", function()
      local ins = {}
      for k, spec in ipairs(c.inputs) do ins[k] = input(spec, k, dtype) end
      local call = assert(load("local a, b, c, d, e = ... return " .. c.lua, "=" .. c.name, "t",
                               {farol = farol}))
      if c.err then
        local err = H.fails(call, c.err)(table.unpack(ins, 1, #c.inputs))
        assert(err:find("^farol: "), err)
        return
      end
      local outs = table.pack(call(table.unpack(ins, 1, #c.inputs)))
      assert.equals(#c.outputs, outs.n, "number of results")
      for k, exp in ipairs(c.outputs) do check(outs[k], exp, "output " .. k, dtype) end
      if not c.grads then return end
      local wrt, floats, gos = {}, {}, {}
      for k, spec in ipairs(c.inputs) do
        if spec.kind == "float" and spec.grad then wrt[#wrt + 1] = ins[k] end
      end
      for k = 1, outs.n do
        if outs[k]:dtype() ~= "int64" then
          floats[#floats + 1] = outs[k]
          gos[#gos + 1] = make(fill(outs[k]:numel(), 100 + #gos), outs[k]:size(), outs[k]:dtype())
        end
      end
      local gs = farol.grad(floats, wrt, gos)
      for k, exp in ipairs(c.grads) do check(gs[k], exp, "gradient of input " .. k, dtype) end
    end)
   end
  end
end)

describe("empty shapes, beyond the table", function()
  it("softmax over an empty dim returns without visiting the other dims", function()
    local x = farol.zeros(2^30, 0)
    for _, f in ipairs({farol.softmax, farol.log_softmax}) do
      local t0 = farol.clock()
      local y = f(x, 1)
      assert.same({2^30, 0}, y:size())
      y = f(x, 2)
      -- 2^30 rows took 15 s when each was visited; a generous bound
      assert.is_true(farol.clock() - t0 < 2, "took " .. (farol.clock() - t0) .. " s")
    end
  end)

  it("backward leaves an empty gradient in the leaves, as PyTorch", function()
    local x = farol.zeros(0, 3, 6, 6):requires_grad(true)
    local w = farol.randn(4, 3, 3, 3):requires_grad(true)
    local b = farol.randn(4):requires_grad(true)
    local y = farol.conv2d(x, w, b):relu():sum()
    y:backward()
    assert.same({0, 3, 6, 6}, x.grad:size())
    H.close(w.grad, farol.zeros(4, 3, 3, 3), 0, 0, "w.grad")
    H.close(b.grad, farol.zeros(4), 0, 0, "b.grad")
  end)

  it("runs attention, transformer and recurrent layers on empty batches as PyTorch", function()
    local nn = farol.nn
    local m = nn.MultiheadAttention(4, 2, {batch_first = true})
    farol.no_grad(function() m.out_proj.bias:fill_(0.5) end)
    -- no key to attend to: the weights are empty, the output the projection's bias
    H.close(m(farol.randn(2, 3, 4), farol.zeros(2, 0, 4), farol.zeros(2, 0, 4)),
            farol.full({2, 3, 4}, 0.5), 0, 0, "attention over 0 keys")
    assert.same({0, 3, 4}, m(farol.zeros(0, 3, 4), farol.zeros(0, 3, 4), farol.zeros(0, 3, 4)):size())
    local t = nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8, batch_first = true})
    assert.same({0, 3, 4}, t(farol.zeros(0, 3, 4)):size())
    assert.same({2, 0, 4}, t(farol.zeros(2, 0, 4)):size())
    for _, cls in ipairs({"LSTM", "GRU"}) do
      local r = nn[cls](3, 4, {batch_first = true})
      local x = farol.zeros(0, 5, 3):requires_grad(true)
      local y = r(x)
      assert.same({0, 5, 4}, y:size())
      assert.same({0, 5, 3}, farol.grad(y, x, farol.zeros(0, 5, 4)):size())
      H.fails(function() return r(farol.zeros(2, 0, 3)) end,
              "farol: nn." .. cls .. ": the sequence length must be at least 1 (input [2, 0, 3])")()
    end
  end)

  it("every attribution method of a CNN on 0 examples gives 0 attributions", function()
    local nn = farol.nn
    local model = nn.Sequential(nn.Conv2d(3, 4, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Flatten(), nn.Linear(4 * 4 * 4, 5)):eval()
    local x = farol.zeros(0, 3, 8, 8)
    local a = farol.Saliency(model):attribute(x, {target = 2})
    assert.same({0, 3, 8, 8}, a:size())
    a = farol.Saliency(model):attribute(x, {target = farol.zeros(0, "int64")})
    assert.same({0, 3, 8, 8}, a:size())
    for _, name in ipairs({"InputXGradient", "IntegratedGradients", "GuidedBackprop", "Deconvolution"}) do
      assert.same({0, 3, 8, 8}, farol[name](model):attribute(x, {target = 2}):size(), name)
    end
    local expect = {LayerGradCam = {0, 1, 8, 8}, GuidedGradCam = {0, 3, 8, 8},
                    LayerIntegratedGradients = {0, 4, 8, 8}}
    for name, shape in pairs(expect) do
      assert.same(shape, farol[name](model, model["0"]):attribute(x, {target = 2}):size(), name)
    end
    local ig, delta = farol.IntegratedGradients(model):attribute(x, {target = 2, return_convergence_delta = true})
    assert.same({0, 3, 8, 8}, ig:size())
    assert.same({0}, delta:size())
  end)
end)
