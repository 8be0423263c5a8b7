-- farol.nn modules against PyTorch (tests/fixtures/modules, made by
-- tests/tools/make_module_fixtures.py): each variant builds the module,
-- loads PyTorch's state_dict strictly (so the names match), checks the
-- parameter order, runs the call in float64 and compares every output and
-- the gradients of the inputs and parameters for given output gradients.
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

local split = H.split


-- results as one array: a plain table of tensors counts as its elements
local function flatten(...)
  local out = {}
  for i = 1, select("#", ...) do
    local r = select(i, ...)
    if farol.is_tensor(r) then out[#out + 1] = r
    else for _, t in ipairs(r) do out[#out + 1] = t end end
  end
  return out
end

local RTOL, ATOL = 1e-10, 1e-10

describe("modules against PyTorch", function()
  for _, file in ipairs(H.fixture_files("modules")) do
    local t, md = H.load("modules/" .. file .. ".safetensors")
    for _, v in ipairs(split(md.variants)) do
      it(file .. " " .. v .. ": " .. md[v .. ".module"], function()
        local env = {nn = nn, farol = farol}
        local m = assert(load("return " .. md[v .. ".module"], "=module", "t", env))()
        m:to("float64"):eval()
        local sd, prefix = {}, v .. ".sd."
        for k, x in pairs(t) do
          if k:sub(1, #prefix) == prefix then sd[k:sub(#prefix + 1)] = x end
        end
        m:load_state_dict(sd)
        local names, params = {}, {}
        for name, p in m:named_parameters() do
          names[#names + 1] = name
          params[name] = p
        end
        assert.are.same(split(md[v .. ".params"]), names)

        local wrt, wrt_names = {}, {}
        for _, name in ipairs(split(md[v .. ".inputs"])) do
          local x = t[v .. "." .. name]:clone()
          if x:dtype() ~= "int64" then
            x:requires_grad(true)
            wrt[#wrt + 1], wrt_names[#wrt_names + 1] = x, name
          end
          env[name] = x
        end
        for _, name in ipairs(names) do
          wrt[#wrt + 1], wrt_names[#wrt_names + 1] = params[name], "sd." .. name
        end
        env.m = m
        local outs = flatten(assert(load("return " .. md[v .. ".call"], "=call", "t", env))())
        assert.are.equal(tonumber(md[v .. ".outputs"]), #outs)
        local gouts = {}
        for i, o in ipairs(outs) do
          H.close(o, t[v .. ".out" .. i], RTOL, ATOL, v .. " out" .. i)
          gouts[i] = t[v .. ".grad_out" .. i]
        end
        local grads = farol.grad(outs, wrt, gouts)
        for i, name in ipairs(wrt_names) do
          H.close(grads[i], t[v .. ".grad." .. name], RTOL, ATOL, v .. " grad of " .. name)
        end
      end)
    end
  end
end)

describe("named Sequential", function()
  it("names children as given, in order, with PyTorch's state_dict keys", function()
    local s = nn.Sequential{{"conv", nn.Conv2d(1, 2, 3)}, {"act", nn.ReLU6()}, {"fc", nn.Linear(2, 1)}}
    assert.are.equal(3, #s)
    assert.are.same({"conv", "act", "fc"}, s:names())
    local keys = {}
    for k in s:named_parameters() do keys[#keys + 1] = k end
    assert.are.same({"conv.weight", "conv.bias", "fc.weight", "fc.bias"}, keys)
    local name, first = s:named_children()()
    assert.are.equal("conv", name)
    assert.are.equal(s.conv, first)
    assert.are.same({"0", "1"}, nn.Sequential(nn.ReLU(), nn.Tanh()):names())
    assert.are.equal(0, #nn.Sequential{})
  end)

  it("refuses bad names and entries", function()
    H.fails(function() nn.Sequential{{"a.b", nn.ReLU()}} end,
            "farol: nn.Sequential: entry 1: a child name must be a non-empty string without \".\"")()
    H.fails(function() nn.Sequential{{"a", nn.ReLU()}, {"a", nn.Tanh()}} end,
            "farol: nn.Sequential: entry 2: the name \"a\" is already taken")()
    H.fails(function() nn.Sequential{{"forward", nn.ReLU()}} end,
            "farol: nn.Sequential: entry 1: the name \"forward\" is already taken")()
    H.fails(function() nn.Sequential{{"a", 3}} end, "farol: nn.Sequential: entry 1 is a number, expected a module")()
    H.fails(function() nn.Sequential{nn.ReLU()} end, "farol: nn.Sequential: entry 1 must be a {name, module} pair")()
    H.fails(function() nn.Sequential{a = nn.ReLU()} end,
            "farol: nn.Sequential: expects modules, or one array of {name, module} pairs; got a table with key a")()
    H.fails(function() nn.Sequential(nn.ReLU(), 5) end, "farol: nn.Sequential: argument 2 is a number, expected a module")()
  end)
end)

describe("recurrent modules", function()
  it("have PyTorch's parameter names and shapes", function()
    local m = nn.LSTM(3, 4, {num_layers = 2, bidirectional = true})
    local got = {}
    for k, p in m:named_parameters() do got[#got + 1] = k .. "=" .. table.concat(p:size(), "x") end
    assert.are.same({"weight_ih_l0=16x3", "weight_hh_l0=16x4", "bias_ih_l0=16", "bias_hh_l0=16",
                     "weight_ih_l0_reverse=16x3", "weight_hh_l0_reverse=16x4", "bias_ih_l0_reverse=16",
                     "bias_hh_l0_reverse=16", "weight_ih_l1=16x8", "weight_hh_l1=16x4", "bias_ih_l1=16",
                     "bias_hh_l1=16", "weight_ih_l1_reverse=16x8", "weight_hh_l1_reverse=16x4",
                     "bias_ih_l1_reverse=16", "bias_hh_l1_reverse=16"}, got)
    local g = nn.GRU(2, 5, {bias = false})
    got = {}
    for k, p in g:named_parameters() do got[#got + 1] = k .. "=" .. table.concat(p:size(), "x") end
    assert.are.same({"weight_ih_l0=15x2", "weight_hh_l0=15x5"}, got)
  end)

  it("return output and state shaped as PyTorch's", function()
    local out, s = nn.LSTM(3, 4, {num_layers = 2, batch_first = true, bidirectional = true})(farol.randn(2, 5, 3))
    assert.are.same({2, 5, 8}, out.shape)
    assert.are.same({4, 2, 4}, s[1].shape)
    assert.are.same({4, 2, 4}, s[2].shape)
    local o2, h = nn.GRU(3, 4)(farol.randn(5, 3))
    assert.are.same({5, 4}, o2.shape)
    assert.are.same({1, 4}, h.shape)
  end)

  it("check their arguments", function()
    local m = nn.LSTM(3, 4)
    H.fails(function() nn.LSTM(3, 4, {layers = 2}) end,
            "farol: nn.LSTM: unknown option 'layers' (valid: num_layers, bias, batch_first, dropout, bidirectional)")()
    H.fails(function() nn.GRU(3, 4, {batch_first = 1}) end, "farol: nn.GRU: batch_first must be a boolean, got number")()
    H.fails(function() m(farol.randn(5, 2, 2)) end,
            "farol: nn.LSTM: input has 2 features, the module expects 3 (input [5, 2, 2])")()
    H.fails(function() m(farol.randn(5, 2, 3), farol.zeros(1, 2, 4)) end,
            "farol: nn.LSTM: state must be a table {h0, c0}, got userdata")()
    H.fails(function() m(farol.randn(5, 2, 3), {farol.zeros(1, 3, 4), farol.zeros(1, 2, 4)}) end,
            "farol: nn.LSTM: h0 must have shape [1, 2, 4], got [1, 3, 4]")()
    H.fails(function() nn.GRU(3, 4)(farol.randn(5, 3), farol.zeros(2, 4)) end,
            "farol: nn.GRU: h0 must have shape [1, 4], got [2, 4]")()
    H.fails(function() nn.GRU(3, 4)(farol.randn(4)) end, "farol: nn.GRU: input must be 2-D (unbatched) or 3-D, got [4]")()
  end)
end)

describe("activation modules", function()
  it("check their arguments and match the functions", function()
    local x = farol.tensor{-7, -3, -1, 0, 1, 3, 6, 7}
    H.fails(function() nn.LeakyReLU("x") end, "farol: nn.LeakyReLU: negative_slope must be a number, got string")()
    H.fails(function() nn.ELU({}) end, "farol: nn.ELU: alpha must be a number, got table")()
    H.fails(function() nn.Tanh(1) end, "farol: nn.Tanh: takes no arguments, got 1")()
    H.fails(function() nn.ReLU6(1) end, "farol: nn.ReLU6: inplace must be a boolean, got number")()
    H.fails(function() nn.LeakyReLU(0.2, true, 1) end,
            "farol: nn.LeakyReLU: takes at most 2 arguments (negative_slope, inplace), got 3")()
    H.fails(function() nn.Hardswish()(x, x) end, "farol: nn.Hardswish: forward takes one input, got 2 arguments")()
    H.fails(function() nn.GELU("tanh") end,
            "farol: nn.GELU: approximate must be \"none\" (farol has the exact form only), got tanh")()
    assert.are.equal(0.01, nn.LeakyReLU(nil, true).negative_slope)
    assert.are.same({0, 0, 0, 0, 1, 3, 6, 6}, nn.ReLU6()(x):totable())
    H.close(farol.nn.functional.hardsigmoid(x), farol.tensor{0, 0, 1 / 3, 0.5, 2 / 3, 1, 1, 1}, 1e-7, 0)
    H.close(x:hardswish(), x * nn.Hardsigmoid()(x), 1e-6, 1e-6)
  end)
end)

describe("stray arguments", function()
  it("are refused by constructors and forwards with fixed parameters, naming them", function()
    H.fails(function() nn.Linear(3, 4, {}, 5) end,
            "farol: nn.Linear: the constructor takes at most 3 arguments (in_features, out_features, opts), got 4")()
    H.fails(function() nn.Conv2d(1, 1, 3)(farol.ones(1, 1, 4, 4), true) end,
            "farol: nn.Conv2d: forward takes at most 1 argument (x), got 2")()
    H.fails(function() nn.Dropout(0.5, 1) end, "farol: nn.Dropout: inplace must be a boolean, got number")()
    local Net = nn.Module:extend("Net")
    function Net:init(n) self.fc = nn.Linear(n, 2) end
    function Net:forward(x) return self.fc(x) end
    H.fails(function() Net(3, 4) end, "farol: Net: the constructor takes at most 1 argument (n), got 2")()
    H.fails(function() Net(3)(farol.ones(1, 3), farol.ones(1)) end,
            "farol: Net: forward takes at most 1 argument (x), got 2")()
  end)

  it("count trailing nils as absent and leave vararg functions alone", function()
    assert.are.same({1, 2}, nn.Linear(3, 2, nil)(farol.ones(1, 3), nil, nil).shape)
    local V = nn.Module:extend("V")
    function V:forward(...) return select("#", ...) end
    assert.are.equal(3, V()(1, 2, 3))
    assert.are.equal(3, nn.Sequential(V())(1, 2, 3))  -- extra arguments go to the first child
    assert.is_not_nil(nn.Dropout(0.1, true))
  end)
end)
