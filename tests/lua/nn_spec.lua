-- farol.nn: the Module machinery, every layer's shapes and PyTorch names,
-- state_dict round trips, BatchNorm statistics, attention and the
-- transformer layer against hand-written references, and resnet18's keys.
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

local function shape(t) return table.concat(t:size(), "x") end

-- sorted list of a module's state_dict keys
local function keys(m)
  local out = {}
  for k in pairs(m:state_dict()) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function sorted(list)
  local out = {table.unpack(list)}
  table.sort(out)
  return out
end

local function param_names(m)
  local out = {}
  for name in m:named_parameters() do out[#out + 1] = name end
  return out
end

-- name -> "AxB" for every state_dict entry
local function shapes(m)
  local out = {}
  for k, t in pairs(m:state_dict()) do out[k] = shape(t) end
  return out
end

local function randn64(...) return farol.randn(...):to("float64") end

-- every parameter and buffer of m gets fresh random values (so that round
-- trips and references do not pass on PyTorch's ones-and-zeros defaults)
local function randomise(m)
  farol.no_grad(function()
    for _, t in pairs(m:state_dict()) do
      if t:dtype() ~= "int64" then t:copy_(farol.rand(t:size()) + 0.5) end
    end
  end)
  return m
end

describe("nn.Module", function()
  it("builds a module from a class with init and forward", function()
    local Net = nn.Module:extend("Net")
    function Net:init(n) self.fc1 = nn.Linear(n, 3) end
    function Net:forward(x) return self.fc1(x):relu() end
    local net = Net(4)
    assert.equals("2x3", shape(net(farol.randn(2, 4))))
    assert.same({"fc1.bias", "fc1.weight"}, keys(net))
    assert.is_true(nn.is_module(net))
  end)

  it("adopts a table as a module in the instance form", function()
    local net = nn.Module{fc1 = nn.Linear(4, 3), forward = function(self, x) return self.fc1(x) end}
    assert.equals("2x3", shape(net(farol.randn(2, 4))))
    assert.same({"fc1.bias", "fc1.weight"}, keys(net))
  end)

  it("lists parameters in definition order, own tensors before children", function()
    local Net = nn.Module:extend()
    function Net:init()
      self.b = nn.Linear(2, 2)
      self:parameter("scale", farol.ones(1))
      self.a = nn.Sequential(nn.Linear(2, 3, {bias = false}), nn.ReLU(), nn.Linear(3, 1))
    end
    assert.same({"scale", "b.weight", "b.bias", "a.0.weight", "a.2.weight", "a.2.bias"},
                param_names(Net()))
  end)

  it("names Sequential children 0, 1, ... including parameter-free ones", function()
    local s = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    local names = {}
    for name in s:named_children() do names[#names + 1] = name end
    assert.same({"0", "1", "2", "3"}, names)
    assert.same({"0.bias", "0.weight", "3.bias", "3.weight"}, keys(s))
    assert.equals(4, #s)
    assert.equals("5x2", shape(s(farol.randn(5, 1, 4, 4))))
  end)

  it("propagates eval and train to every descendant", function()
    local m = nn.Sequential(nn.Sequential(nn.Dropout(0.5), nn.BatchNorm2d(2)),
                            nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8}))
    local function all(flag)
      local function walk(mod)
        assert.equals(flag, mod.training)
        for _, child in mod:named_children() do walk(child) end
      end
      walk(m)
    end
    all(true)
    assert.equals(m, m:eval())
    all(false)
    m:train()
    all(true)
    m:train(false)
    all(false)
  end)

  it("converts every descendant's parameters and buffers with to()", function()
    local m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3),
                            nn.Sequential(nn.LayerNorm(3), nn.MultiheadAttention(4, 2)))
    m:to("float64")
    for name, t in pairs(m:state_dict()) do
      if name:match("num_batches_tracked$") then
        assert.equals("int64", t:dtype())
      else
        assert.equals("float64", t:dtype(), name)
      end
    end
    for name, p in m:named_parameters() do assert.is_true(p:requires_grad(), name) end
    local y = nn.Sequential(m["0"], m["1"])(randn64(1, 2, 5, 5))
    assert.equals("float64", y:dtype())
    assert.has_error(function() m:to("int64") end)
  end)

  describe("load_state_dict", function()
    local function net()
      return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    end

    it("round-trips strictly: same outputs, copied not shared", function()
      local a, b = randomise(net()):eval(), net():eval()
      farol.no_grad(function() a["1"].num_batches_tracked:fill_(7) end)
      local res = b:load_state_dict(a:state_dict())
      assert.same({}, res.missing)
      assert.same({}, res.unexpected)
      local x = farol.randn(2, 2, 4, 4)
      H.close(b(x), a(x), 0, 0, "output")
      assert.equals(7, b["1"].num_batches_tracked:item())
      farol.no_grad(function() a["0"].weight:fill_(0) end)
      assert.is_true(b["0"].weight:abs():sum():item() > 0)
      assert.is_true(b["0"].weight:requires_grad())
    end)

    it("reports missing and unexpected keys", function()
      local sd = net():state_dict()
      sd["1.running_var"] = nil
      sd["extra.weight"] = farol.zeros(1)
      H.fails(function() net():load_state_dict(sd) end,
              "farol: load_state_dict", "missing keys: 1.running_var", "unexpected keys: extra.weight")()
      local res = net():load_state_dict(sd, {strict = false})
      assert.same({"1.running_var"}, res.missing)
      assert.same({"extra.weight"}, res.unexpected)
    end)

    it("rejects a size mismatch, naming the key and both shapes", function()
      local sd = net():state_dict()
      sd["4.weight"] = farol.zeros(2, 13)
      H.fails(function() net():load_state_dict(sd) end,
              "size mismatch for 4.weight", "[2, 13]", "[2, 12]")()
    end)
  end)
end)

describe("nn.Conv1d and nn.Conv2d", function()
  it("have PyTorch's parameter shapes and output sizes", function()
    local c = nn.Conv2d(4, 6, {3, 5}, {stride = 2, padding = {1, 2}, dilation = 1, groups = 2})
    assert.same({weight = "6x2x3x5", bias = "6"}, shapes(c))
    assert.equals("1x6x4x3", shape(c(farol.randn(1, 4, 8, 6))))
    local c1 = nn.Conv1d(3, 5, 4, {stride = 2, padding = 1, bias = false})
    assert.same({weight = "5x3x4"}, shapes(c1))
    assert.equals("2x5x5", shape(c1(farol.randn(2, 3, 10))))
  end)

  it("initialise within PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))", function()
    local c = nn.Conv2d(8, 16, 3)
    local bound = 1 / math.sqrt(8 * 9)
    assert.is_true(c.weight:abs():max():item() <= bound)
    assert.is_true(c.weight:abs():max():item() > 0.9 * bound)
    assert.is_true(c.bias:abs():max():item() <= bound)
  end)

  it("compute farol.conv2d with their options", function()
    local c = nn.Conv2d(4, 6, 3, {stride = 2, padding = 1, dilation = 2, groups = 2}):to("float64")
    local x = randn64(2, 4, 9, 9)
    local want = farol.conv2d(x, c.weight, c.bias, {stride = 2, padding = 1, dilation = 2, groups = 2})
    H.close(c(x), want, 0, 0, "conv2d")
  end)

  it("pad \"same\" as PyTorch, extra padding at the end for even kernels", function()
    local c = nn.Conv2d(2, 3, {4, 3}, {padding = "same"}):to("float64")
    local x = randn64(1, 2, 6, 5)
    local y = c(x)
    assert.equals("1x3x6x5", shape(y))
    -- kernel 4 along H: 1 row before, 2 after; kernel 3 along W: 1 and 1
    local want = farol.conv2d(farol.pad(x, {1, 1, 1, 2}), c.weight, c.bias)
    H.close(y, want, 1e-12, 1e-12, "same")
    local c1 = nn.Conv1d(2, 2, 5, {padding = "same", dilation = 2})
    assert.equals("1x2x7", shape(c1(farol.randn(1, 2, 7))))
  end)

  it("reject bad arguments", function()
    H.fails(function() nn.Conv2d(3, 4, 3, {groups = 2}) end, "nn.Conv2d", "groups (2) must divide")()
    H.fails(function() nn.Conv2d(3, 4, 0) end, "nn.Conv2d", "kernel_size")()
    H.fails(function() nn.Conv2d(3, 4, 3, {stride = 2, padding = "same"}) end, "stride 1")()
    H.fails(function() nn.Conv2d(3, 4, 3, {paddin = 1}) end, "unknown option 'paddin'")()
  end)
end)

describe("pooling modules", function()
  it("MaxPool2d and AvgPool2d default the stride to the kernel size", function()
    local x = randn64(2, 3, 9, 8)
    H.close(nn.MaxPool2d(2)(x), farol.max_pool2d(x, 2), 0, 0, "max")
    assert.equals("2x3x4x4", shape(nn.MaxPool2d(2)(x)))
    assert.equals("2x3x5x4", shape(nn.MaxPool2d(3, {stride = 2, padding = 1})(x)))
    H.close(nn.AvgPool2d({3, 2}, {stride = 1, padding = {1, 0}})(x),
            farol.avg_pool2d(x, {3, 2}, {stride = 1, padding = {1, 0}}), 0, 0, "avg")
    H.fails(function() nn.MaxPool2d(2, {padding = 2}) end, "nn.MaxPool2d", "padding")()
  end)

  it("AdaptiveAvgPool2d takes {h, w} or one size", function()
    local x = farol.randn(2, 3, 7, 5)
    assert.equals("2x3x2x3", shape(nn.AdaptiveAvgPool2d({2, 3})(x)))
    assert.equals("2x3x1x1", shape(nn.AdaptiveAvgPool2d(1)(x)))
    H.close(nn.AdaptiveAvgPool2d(1)(x):view(2, 3), x:mean(4):mean(3), 1e-6, 1e-6, "global mean")
  end)
end)

describe("nn.BatchNorm2d", function()
  -- per-channel mean and variances of x (N, C, H, W) by plain Lua loops
  local function stats(x)
    local t, n, c = x:totable(), x:size(1), x:size(2)
    local mean, biased, unbiased = {}, {}, {}
    for ch = 1, c do
      local s, cnt = 0, 0
      for i = 1, n do for _, row in ipairs(t[i][ch]) do for _, v in ipairs(row) do s, cnt = s + v, cnt + 1 end end end
      local m, ss = s / cnt, 0
      for i = 1, n do for _, row in ipairs(t[i][ch]) do for _, v in ipairs(row) do ss = ss + (v - m) ^ 2 end end end
      mean[ch], biased[ch], unbiased[ch] = m, ss / cnt, ss / (cnt - 1)
    end
    return mean, biased, unbiased
  end

  it("has PyTorch's parameters and buffers", function()
    local bn = nn.BatchNorm2d(5)
    assert.same({weight = "5", bias = "5", running_mean = "5", running_var = "5", num_batches_tracked = ""},
                shapes(bn))
    assert.same({"weight", "bias"}, param_names(bn))
    assert.equals("int64", bn.num_batches_tracked:dtype())
    assert.equals(0, bn.num_batches_tracked:item())
    H.close(bn.running_var, farol.ones(5), 0, 0, "running_var")
    assert.same({"num_batches_tracked", "running_mean", "running_var"},
                sorted((function() local o = {} for k in bn:named_buffers() do o[#o + 1] = k end return o end)()))
  end)

  it("normalises with batch statistics and updates running ones in training", function()
    local bn = nn.BatchNorm2d(3, {eps = 1e-3}):to("float64")
    randomise(bn)
    local rm0, rv0 = bn.running_mean:totable(), bn.running_var:totable()
    local w, b = bn.weight:totable(), bn.bias:totable()
    local x = randn64(4, 3, 2, 5) * 2 + 1
    local y = bn(x)
    local mean, biased, unbiased = stats(x)
    local xt, yt = x:totable(), y:totable()
    for i = 1, 4 do for ch = 1, 3 do for h = 1, 2 do for k = 1, 5 do
      local want = (xt[i][ch][h][k] - mean[ch]) / math.sqrt(biased[ch] + 1e-3) * w[ch] + b[ch]
      assert.is_true(math.abs(yt[i][ch][h][k] - want) < 1e-12)
    end end end end
    for ch = 1, 3 do
      assert.is_true(math.abs(bn.running_mean:get(ch) - (0.9 * rm0[ch] + 0.1 * mean[ch])) < 1e-12)
      assert.is_true(math.abs(bn.running_var:get(ch) - (0.9 * rv0[ch] + 0.1 * unbiased[ch])) < 1e-12)
    end
    assert.equals(1, bn.num_batches_tracked:item())
    bn(x)
    assert.equals(2, bn.num_batches_tracked:item())
    assert.is_false(bn.running_mean:requires_grad())
  end)

  it("differentiates through the batch statistics in training", function()
    local bn = nn.BatchNorm2d(2):to("float64")
    local x = randn64(3, 2, 3, 3):requires_grad(true)
    local r = randn64(3, 2, 3, 3)
    ;(bn(x) * r):sum():backward()
    local g = x.grad
    -- shifting a channel leaves the output unchanged: its gradient sums to 0
    for ch = 1, 2 do
      assert.is_true(math.abs(g:select(2, ch):sum():item()) < 1e-10)
    end
    -- and it is not the eval-mode gradient (which is r * w / sqrt(var + eps))
    assert.is_true((g - r):abs():max():item() > 1e-3)
  end)

  it("uses the running statistics in eval mode", function()
    local bn = randomise(nn.BatchNorm2d(3):to("float64")):eval()
    local x = randn64(2, 3, 4, 4)
    local v = function(t) return t:view(1, 3, 1, 1) end
    local want = (x - v(bn.running_mean)) / (v(bn.running_var) + 1e-5):sqrt() * v(bn.weight) + v(bn.bias)
    H.close(bn(x), want, 1e-12, 1e-12, "eval")
    assert.equals(0, bn.num_batches_tracked:item())
  end)

  it("supports affine = false and track_running_stats = false", function()
    local bn = nn.BatchNorm2d(2, {affine = false, track_running_stats = false}):eval()
    assert.same({}, keys(bn))
    local y = bn(farol.randn(4, 2, 3, 3))
    assert.is_true(y:select(2, 1):mean():abs():item() < 1e-5)
  end)

  it("rejects wrong inputs", function()
    H.fails(function() nn.BatchNorm2d(3)(farol.randn(2, 3, 4)) end, "nn.BatchNorm2d", "4-D", "[2, 3, 4]")()
    H.fails(function() nn.BatchNorm2d(3)(farol.randn(2, 4, 2, 2)) end, "4 channels", "expects 3")()
    H.fails(function() nn.BatchNorm2d(3)(farol.randn(1, 3, 1, 1)) end, "more than 1 value per channel")()
  end)
end)

describe("nn.LayerNorm, nn.Embedding, nn.Dropout", function()
  it("LayerNorm normalises the trailing shape with weight and bias", function()
    local ln = nn.LayerNorm({3, 4}, {eps = 1e-6})
    assert.same({weight = "3x4", bias = "3x4"}, shapes(ln))
    randomise(ln:to("float64"))
    local x = randn64(2, 3, 4)
    local want = farol.layer_norm(x, {3, 4}, ln.weight, ln.bias, 1e-6)
    H.close(ln(x), want, 0, 0, "layer_norm")
    assert.same({}, keys(nn.LayerNorm(4, {elementwise_affine = false})))
    assert.same({"weight"}, keys(nn.LayerNorm(4, {bias = false})))
  end)

  it("Embedding looks up 1-based rows", function()
    local e = nn.Embedding(10, 3)
    assert.same({weight = "10x3"}, shapes(e))
    local idx = farol.tensor({{1, 10}, {4, 4}}, "int64")
    local y = e(idx)
    assert.equals("2x2x3", shape(y))
    H.close(y[1][2], e.weight[10], 0, 0, "row 10")
  end)

  it("Dropout is the identity in eval mode and scales survivors in training", function()
    local d = nn.Dropout(0.25)
    local x = farol.rand(1000) + 1
    local y = d(x)
    local zeros = 0
    for i = 1, 1000 do
      if y[i] == 0 then zeros = zeros + 1
      else assert.is_true(math.abs(y[i] - x[i] / 0.75) < 1e-5) end
    end
    assert.is_true(zeros > 150 and zeros < 350)
    H.close(d:eval()(x), x, 0, 0, "eval")
    H.fails(function() nn.Dropout(1.5) end, "nn.Dropout", "p must be")()
  end)
end)

-- ------------------------------------------------------- attention

-- reference multi-head attention for ONE example, rows = tokens, with 2-D
-- farol ops per head.  x: (L, E) queries, kv: (S, E) keys and values,
-- pad: nil or a Lua array of S booleans (true = ignore that key)
local function ref_attention(m, x, kv_k, kv_v, pad)
  local e, heads = m.embed_dim, m.num_heads
  local hd = e // heads
  local w, b = m.in_proj_weight, m.in_proj_bias
  local function proj(t, i) return farol.matmul(t, w:narrow(1, i, e):t()) + b:narrow(1, i, e) end
  local q, k, v = proj(x, 1), proj(kv_k, e + 1), proj(kv_v, 2 * e + 1)
  local outs, probs = {}, nil
  for h = 1, heads do
    local qh = q:narrow(2, (h - 1) * hd + 1, hd)
    local kh = k:narrow(2, (h - 1) * hd + 1, hd)
    local vh = v:narrow(2, (h - 1) * hd + 1, hd)
    local s = farol.matmul(qh / math.sqrt(hd), kh:t())
    if pad then
      local mask = farol.zeros(1, #pad, s:dtype())
      for j, p in ipairs(pad) do if p then mask:set(1, 1, j) end end
      s = s:masked_fill(mask, -math.huge)
    end
    local p = farol.softmax(s, 2)
    probs = probs and probs + p or p
    outs[h] = farol.matmul(p, vh)
  end
  local o = farol.cat(outs, 2)
  return farol.matmul(o, m.out_proj.weight:t()) + m.out_proj.bias, probs / heads
end

-- {true/false per key} from a (N, S) 1 = padding mask, row i
local function pad_row(mask, i)
  local row = {}
  for j = 1, mask:size(2) do row[j] = mask:get(i, j) ~= 0 end
  return row
end

describe("nn.MultiheadAttention", function()
  it("has PyTorch's parameters", function()
    local m = nn.MultiheadAttention(8, 2)
    assert.same({"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}, param_names(m))
    assert.same({in_proj_weight = "24x8", in_proj_bias = "24", ["out_proj.weight"] = "8x8", ["out_proj.bias"] = "8"},
                shapes(m))
    assert.equals(0, m.in_proj_bias:abs():sum():item())
    assert.equals(0, m.out_proj.bias:abs():sum():item())
    assert.same({"in_proj_weight", "out_proj.weight"}, param_names(nn.MultiheadAttention(8, 2, {bias = false})))
    H.fails(function() nn.MultiheadAttention(10, 3) end, "divisible by num_heads")()
  end)

  it("matches the reference in self-attention, batch_first, with a key padding mask", function()
    local m = randomise(nn.MultiheadAttention(8, 2, {batch_first = true}):to("float64"))
    local x = randn64(3, 5, 8)
    local pad = farol.tensor({{0, 0, 0, 0, 0}, {0, 0, 0, 1, 1}, {1, 0, 0, 0, 0}}, "float64")
    local out, w = m(x, x, x, {key_padding_mask = pad, need_weights = true})
    assert.equals("3x5x8", shape(out))
    assert.equals("3x5x5", shape(w))
    for i = 1, 3 do
      local ro, rw = ref_attention(m, x[i], x[i], x[i], pad_row(pad, i))
      H.close(out[i], ro, 1e-12, 1e-12, "output " .. i)
      H.close(w[i], rw, 1e-12, 1e-12, "weights " .. i)
    end
    -- padded keys get exactly zero weight
    assert.equals(0, w[2]:select(2, 4):abs():sum():item())
  end)

  it("matches the reference in cross-attention with sequence-first inputs", function()
    local m = randomise(nn.MultiheadAttention(6, 3):to("float64"))
    local q, k, v = randn64(4, 2, 6), randn64(7, 2, 6), randn64(7, 2, 6)
    local out = m(q, k, v)
    assert.equals("4x2x6", shape(out))
    local kv = m(q, k, k)
    for i = 1, 2 do
      H.close(out:select(2, i), ref_attention(m, q:select(2, i), k:select(2, i), v:select(2, i)),
              1e-12, 1e-12, "q k v " .. i)
      H.close(kv:select(2, i), ref_attention(m, q:select(2, i), k:select(2, i), k:select(2, i)),
              1e-12, 1e-12, "q k k " .. i)
    end
  end)

  it("returns per-head weights, adds float attn_mask and forbids int64 attn_mask", function()
    local m = randomise(nn.MultiheadAttention(4, 2, {batch_first = true}):to("float64"))
    local x = randn64(2, 3, 4)
    local _, w = m(x, x, x, {need_weights = true, average_attn_weights = false})
    assert.equals("2x2x3x3", shape(w))
    local causal = farol.tensor({{0, -math.huge, -math.huge}, {0, 0, -math.huge}, {0, 0, 0}}, "float64")
    local forbid = farol.tensor({{0, 1, 1}, {0, 0, 1}, {0, 0, 0}}, "int64")
    local o1, w1 = m(x, x, x, {attn_mask = causal, need_weights = true})
    local o2, w2 = m(x, x, x, {attn_mask = forbid, need_weights = true})
    H.close(o1, o2, 0, 0, "causal output")
    assert.equals(0, w1[1][1][2] + w1[1][1][3] + w1[2][2][3])
    H.close(w2, w1, 0, 0, "causal weights")
  end)

  it("accepts unbatched (L, E) inputs", function()
    local m = randomise(nn.MultiheadAttention(4, 2):to("float64"))
    local x = randn64(3, 4)
    local out, w = m(x, x, x, {need_weights = true})
    assert.equals("3x4", shape(out))
    assert.equals("3x3", shape(w))
    H.close(out, ref_attention(m, x, x, x), 1e-12, 1e-12, "unbatched")
  end)

  it("rejects bad shapes", function()
    local m = nn.MultiheadAttention(4, 2, {batch_first = true})
    local x = farol.randn(2, 3, 4)
    H.fails(function() m(farol.randn(2, 3, 5), x, x) end, "query must be", "[2, 3, 5]")()
    H.fails(function() m(x, x, x, {key_padding_mask = farol.zeros(2, 4)}) end, "key_padding_mask", "[2, 3]")()
    H.fails(function() m(x, x, x, {attn_mask = farol.zeros(3, 4)}) end, "attn_mask", "[3, 4]")()
  end)
end)

describe("nn.TransformerEncoderLayer", function()
  -- reference layer for one example x (T, E), pad as in ref_attention
  local function ref_layer(l, x, pad)
    local function lin(m, t) return farol.matmul(t, m.weight:t()) + m.bias end
    local function ln(m, t) return farol.layer_norm(t, {t:size(2)}, m.weight, m.bias, 1e-5) end
    local function sa(t) return (ref_attention(l.self_attn, t, t, t, pad)) end
    local function ff(t) return lin(l.linear2, lin(l.linear1, t):gelu()) end
    if l.norm_first then
      local h = x + sa(ln(l.norm1, x))
      return h + ff(ln(l.norm2, h))
    end
    local h = ln(l.norm1, x + sa(x))
    return ln(l.norm2, h + ff(h))
  end

  it("has PyTorch's parameter names in PyTorch's order", function()
    local l = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16})
    assert.same({"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                 "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                 "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"}, param_names(l))
    assert.equals("16x8", shapes(l)["linear1.weight"])
    local names = {}
    for name in l:named_children() do names[#names + 1] = name end
    assert.same({"self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"}, names)
  end)

  for _, norm_first in ipairs({false, true}) do
    it((norm_first and "pre-LN" or "post-LN") .. " matches the reference with a padding mask", function()
      local l = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 12, activation = "gelu", batch_first = true,
                                                  norm_first = norm_first})
      randomise(l:to("float64")):eval()
      local x = randn64(2, 5, 8)
      local pad = farol.tensor({{0, 0, 0, 0, 0}, {0, 0, 0, 1, 1}}, "float64")
      local y = l(x, {src_key_padding_mask = pad})
      assert.equals("2x5x8", shape(y))
      for i = 1, 2 do H.close(y[i], ref_layer(l, x[i], pad_row(pad, i)), 1e-11, 1e-11, "example " .. i) end
    end)
  end

  it("keeps real tokens independent of padded ones, sequence-first", function()
    local l = randomise(nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8}):to("float64")):eval()
    local x = randn64(6, 2, 4)
    local pad = farol.tensor({{0, 0, 0, 0, 1, 1}, {0, 0, 0, 0, 0, 1}}, "float64")
    local y1 = l(x, {src_key_padding_mask = pad})
    local x2 = x:clone()
    x2:narrow(1, 5, 2):select(2, 1):fill_(100)
    local y2 = l(x2, {src_key_padding_mask = pad})
    H.close(y2:narrow(1, 1, 4), y1:narrow(1, 1, 4), 0, 0, "real tokens")
    x:requires_grad(true)
    l(x, {src_key_padding_mask = pad}):narrow(1, 1, 4):select(2, 1):sum():backward()
    local g = x.grad
    assert.equals(0, g:narrow(1, 5, 2):select(2, 1):abs():sum():item())
  end)

  it("takes a module as activation, as its last child", function()
    local a = nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8, activation = "gelu"}):eval()
    local b = nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8, activation = nn.GELU()}):eval()
    b:load_state_dict(a:state_dict())
    local last
    for name in b:named_children() do last = name end
    assert.equals("activation", last)
    -- a float32 layer with a float64 int-valued mask, sequence-first
    local x = farol.randn(3, 2, 4)
    local pad = farol.tensor({{0, 0, 1}, {0, 0, 0}}, "float64")
    H.close(b(x, {src_key_padding_mask = pad}), a(x, {src_key_padding_mask = pad}), 0, 0, "gelu module")
    assert.equals("float32", a(x, {src_key_padding_mask = pad}):dtype())
  end)

  it("applies dropout only in training", function()
    local l = nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8, dropout = 0.5})
    local x = farol.randn(3, 2, 4)
    H.close(l:eval()(x), l(x), 0, 0, "eval is deterministic")
    l:train()
    assert.is_true((l(x) - l(x)):abs():max():item() > 0)
  end)

  it("rejects an unknown activation or option", function()
    H.fails(function() nn.TransformerEncoderLayer(4, 2, {activation = "tanh"}) end, "activation")()
    H.fails(function() nn.TransformerEncoderLayer(4, 2)(farol.randn(3, 2, 4), {mask = 1}) end, "unknown option 'mask'")()
  end)
end)

describe("models.resnet18", function()
  local resnet18 = require("farol.models.resnet18")

  local function read_keys()
    local out = {}
    for line in io.lines(H.fixtures .. "/models/resnet18_keys.txt") do
      if line ~= "" then out[#out + 1] = line end
    end
    return out
  end

  it("has torchvision's state_dict keys, parameters in torchvision's order", function()
    local m = resnet18(10)
    local want = read_keys()
    assert.same(sorted(want), keys(m))
    local params = {}
    for _, k in ipairs(want) do
      if not (k:match("running_") or k:match("num_batches_tracked")) then params[#params + 1] = k end
    end
    assert.same(params, param_names(m))
    assert.equals("10x512", shapes(m)["fc.weight"])
    assert.equals("128x64x1x1", shapes(m)["layer2.0.downsample.0.weight"])
  end)

  it("maps a 1x3x64x64 image to 1 x num_classes", function()
    local m = resnet18(10):eval()
    assert.equals("1x10", shape(m(farol.randn(1, 3, 64, 64))))
    assert.equals("1000", shapes(resnet18())["fc.bias"])
    assert.equals("7", shapes(resnet18{num_classes = 7})["fc.bias"])
  end)

  -- torchvision's numbers, from tests/tools/make_resnet18_fixture.py (45 MB,
  -- so kept out of the repository: run it by hand and point this variable
  -- at its output)
  local data = os.getenv("FAROL_RESNET18_FIXTURE")
  if data then
    it("reproduces torchvision's outputs and BatchNorm updates (" .. data .. ")", function()
      local t = farol.load(data)
      local m = resnet18(10)
      local sd = {}
      for _, k in ipairs(read_keys()) do sd[k] = t[k] end
      m:load_state_dict(sd)
      m:eval()
      H.close(m(t.input), t.output_eval, 1e-3, 1e-4, "eval output")
      m:train()
      H.close(m(t.input), t.output_train, 1e-3, 1e-4, "train output")
      for _, prefix in ipairs({"bn1.", "layer4.1.bn2."}) do
        for _, b in ipairs({"running_mean", "running_var", "num_batches_tracked"}) do
          H.close(m:state_dict()[prefix .. b], t["train." .. prefix .. b], 1e-4, 1e-6, prefix .. b)
        end
      end
    end)
  end
end)
