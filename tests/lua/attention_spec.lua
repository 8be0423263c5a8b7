-- scaled_dot_product_attention and MultiheadAttention's fused path: values
-- and input gradients against the unfused composition (matmul, masked_fill,
-- softmax) and finite differences in float64, masks of each kind, empty
-- shapes, errors, and results that do not depend on the thread count.
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

local function randn64(...) return farol.randn(...):to("float64") end

-- the unfused reference: q, k, v (..., L, E); am float (added) or int64
-- (forbids), broadcast to (..., L, S); kpm int64 (B, S) or (S)
local function reference(q, k, v, am, kpm, scale)
  local nd = q:dim()
  scale = scale or 1 / math.sqrt(q:size(-1))
  local s = farol.matmul(q, k:transpose(nd - 1, nd)) * scale
  if kpm ~= nil then
    local shape = {}
    for i = 1, nd do shape[i] = 1 end
    if kpm:dim() == 2 then shape[1] = kpm:size(1) end
    shape[nd] = kpm:size(-1)
    s = s:masked_fill(kpm:ne(0):view(table.unpack(shape)), -math.huge)
  end
  if am ~= nil then
    if am:dtype() == "int64" then s = s:masked_fill(am:ne(0), -math.huge) else s = s + am end
  end
  return farol.matmul(farol.softmax(s, -1), v)
end

-- gradients of sum(f(xs) * w) with respect to xs (a list), w fixed
local function grads(f, xs, w)
  local leaves = {}
  for i, x in ipairs(xs) do leaves[i] = x:detach():requires_grad(true) end
  local out = f(table.unpack(leaves))
  return farol.grad({(out * w):sum()}, leaves)
end

-- central differences of sum(f(xs) * w) for every element of xs[i]
local function numeric(f, xs, w, i)
  local x = xs[i]
  local flat = x:reshape(-1)
  local g = farol.zeros(flat:numel()):to("float64")
  local eps = 1e-6
  for e = 1, flat:numel() do
    local v = flat[e]
    local function at(d)
      flat[e] = v + d
      local args = {}
      for j, y in ipairs(xs) do args[j] = j == i and flat:view(table.unpack(x:size())) or y end
      return farol.no_grad(function() return (f(table.unpack(args)) * w):sum():item() end)
    end
    g[e] = (at(eps) - at(-eps)) / (2 * eps)
    flat[e] = v
  end
  return g:view(table.unpack(x:size()))
end

describe("scaled_dot_product_attention", function()
  it("matches the unfused composition, without and with masks of each kind", function()
    local q, k, v = randn64(2, 3, 5, 4), randn64(2, 3, 6, 4), randn64(2, 3, 6, 7)
    local add = randn64(5, 6)
    local forbid = farol.tensor({{0, 1, 0, 0, 0, 1}}, "int64")         -- (1, S): per key
    local kpm = farol.tensor({{0, 0, 0, 0, 1, 1}, {1, 0, 0, 0, 0, 0}}, "int64")
    local sdpa = farol.scaled_dot_product_attention
    H.close(sdpa(q, k, v), reference(q, k, v), 1e-13, 1e-13, "plain")
    H.close(sdpa(q, k, v, {attn_mask = add}), reference(q, k, v, add), 1e-13, 1e-13, "float mask")
    H.close(sdpa(q, k, v, {attn_mask = forbid}), reference(q, k, v, forbid), 1e-13, 1e-13, "int64 mask")
    H.close(sdpa(q, k, v, {key_padding_mask = kpm}), reference(q, k, v, nil, kpm), 1e-13, 1e-13, "padding")
    H.close(sdpa(q, k, v, {attn_mask = add, key_padding_mask = kpm, scale = 0.3}),
            reference(q, k, v, add, kpm, 0.3), 1e-13, 1e-13, "both masks, scale")
    -- 2-D and 3-D operands; a padding mask of shape (S)
    local q2, k2, v2 = randn64(4, 3), randn64(5, 3), randn64(5, 2)
    local kp1 = farol.tensor({0, 0, 1, 0, 0}, "int64")
    H.close(sdpa(q2, k2, v2, {key_padding_mask = kp1}), reference(q2, k2, v2, nil, kp1), 1e-13, 1e-13, "2-D")
    local q3, k3, v3 = randn64(3, 4, 2), randn64(3, 5, 2), randn64(3, 5, 3)
    H.close(sdpa(q3, k3, v3), reference(q3, k3, v3), 1e-13, 1e-13, "3-D")
    -- transposed (non-contiguous) operands
    local kt = randn64(2, 3, 4, 6):transpose(3, 4)
    H.close(sdpa(q, kt, v), reference(q, kt, v), 1e-13, 1e-13, "transposed k")
  end)

  it("has the composition's gradients and finite differences' (float64)", function()
    local q, k, v = randn64(2, 2, 3, 4), randn64(2, 2, 5, 4), randn64(2, 2, 5, 3)
    local add = randn64(2, 1, 3, 5)
    local kpm = farol.tensor({{0, 0, 0, 1, 0}, {0, 1, 0, 0, 0}}, "int64")
    local w = randn64(2, 2, 3, 3)
    local function fused(q_, k_, v_, a_)
      return farol.scaled_dot_product_attention(q_, k_, v_, {attn_mask = a_, key_padding_mask = kpm})
    end
    local function unfused(q_, k_, v_, a_) return reference(q_, k_, v_, a_, kpm) end
    local xs = {q, k, v, add}
    local gf, gu = grads(fused, xs, w), grads(unfused, xs, w)
    for i, name in ipairs({"q", "k", "v", "attn_mask"}) do
      H.close(gf[i], gu[i], 1e-12, 1e-12, "d" .. name .. " vs composition")
      H.close(gf[i], numeric(fused, xs, w, i), 1e-6, 1e-7, "d" .. name .. " vs finite differences")
    end
    -- padded keys get no gradient through k
    assert.equals(0, gf[2]:select(1, 1):select(2, 4):abs():sum():item())
  end)

  it("gives NaN to a query whose keys are all forbidden, and no gradient to its scores", function()
    local q, k, v = randn64(1, 2, 3), randn64(1, 4, 3), randn64(1, 4, 2)
    local am = farol.tensor({{0, 0, 0, 0}, {1, 1, 1, 1}}, "int64")
    local out = farol.scaled_dot_product_attention(q, k, v, {attn_mask = am})
    H.close(out, reference(q, k, v, am), 1e-13, 1e-13, "values")
    assert.is_true(out:get(1, 2, 1) ~= out:get(1, 2, 1))
    assert.is_true(out:get(1, 1, 1) == out:get(1, 1, 1))
    local w = farol.tensor({{{1, 1}, {0, 0}}}, "float64")
    local f = function(q_, k_, v_) return farol.scaled_dot_product_attention(q_, k_, v_, {attn_mask = am}) end
    local gf = grads(f, {q, k, v}, w)
    local gu = grads(function(q_, k_, v_) return reference(q_, k_, v_, am) end, {q, k, v}, w)
    for i = 1, 3 do H.close(gf[i], gu[i], 1e-12, 1e-12, "gradient " .. i) end
    assert.equals(0, gf[1]:select(2, 2):abs():sum():item())
  end)

  it("handles empty shapes as the composition does", function()
    local sdpa = farol.scaled_dot_product_attention
    assert.same({0, 2, 3, 4}, sdpa(randn64(0, 2, 3, 5), randn64(0, 2, 6, 5), randn64(0, 2, 6, 4)):size())
    assert.same({2, 0, 4}, sdpa(randn64(2, 0, 5), randn64(2, 6, 5), randn64(2, 6, 4)):size())
    -- no keys: zeros, as softmax over nothing times an empty v
    local q = randn64(2, 3, 5):requires_grad(true)
    local out = sdpa(q, randn64(2, 0, 5), randn64(2, 0, 4))
    H.close(out, farol.zeros(2, 3, 4):to("float64"), 0, 0, "no keys")
    local g = farol.grad({out:sum()}, {q})
    H.close(g[1], farol.zeros(2, 3, 5):to("float64"), 0, 0, "no keys: dq")
    -- E = 0: every score is 0, the result is the mean of v
    local v = randn64(1, 4, 2)
    H.close(sdpa(randn64(1, 3, 0), randn64(1, 4, 0), v), v:mean(2, true):expand(1, 3, 2), 1e-14, 1e-14, "E = 0")
    -- the same in float32, whose products with K = 0 take other GEMM paths
    local v32 = farol.randn(1, 4, 2)
    H.close(sdpa(farol.randn(1, 3, 0), farol.randn(1, 4, 0), v32), v32:mean(2, true):expand(1, 3, 2), 1e-6, 1e-7,
            "E = 0, float32")
    H.close(sdpa(farol.randn(2, 3, 5), farol.randn(2, 0, 5), farol.randn(2, 0, 4)), farol.zeros(2, 3, 4), 0, 0,
            "no keys, float32")
  end)

  it("checks its arguments", function()
    local sdpa = farol.scaled_dot_product_attention
    local q, k, v = farol.randn(2, 3, 4), farol.randn(2, 5, 4), farol.randn(2, 5, 6)
    H.fails(function() sdpa(q, farol.randn(2, 5, 3), v) end,
            "farol: scaled_dot_product_attention: q [2, 3, 4], k [2, 5, 3] and v [2, 5, 6] must be")()
    H.fails(function() sdpa(q, farol.randn(3, 5, 4), farol.randn(3, 5, 6)) end, "same batch dims")()
    H.fails(function() sdpa(q, k, farol.randn(2, 4, 6)) end, "must be (..., L, E)")()
    H.fails(function() sdpa(q, k:to("float64"), v) end, "q, k and v must share a dtype, got float32, float64")()
    H.fails(function() sdpa(q, k, v, {attn_mask = farol.zeros(3, 4)}) end,
            "farol: scaled_dot_product_attention: attn_mask [3, 4] does not broadcast to the scores [2, 3, 5]")()
    H.fails(function() sdpa(q, k, v, {attn_mask = farol.zeros(3, 5):to("float64")}) end,
            "attn_mask is float64 but q is float32")()
    H.fails(function() sdpa(q, k, v, {key_padding_mask = farol.zeros(2, 5)}) end,
            "key_padding_mask must be int64 (nonzero forbids a key), got float32")()
    H.fails(function() sdpa(q, k, v, {key_padding_mask = farol.zeros(3, 5, "int64")}) end,
            "key_padding_mask must be [2, 5] or [5], got [3, 5]")()
    H.fails(function() sdpa(q, k, v, {attn_mask = 1}) end, "attn_mask must be a tensor, got number")()
    H.fails(function() sdpa(q, k, v, {scale = "x"}) end, "scale must be a number, got string")()
    H.fails(function() sdpa(q, k, v, {scale = math.huge}) end, "scale must be finite")()
    H.fails(function() sdpa(q, k, v, {mask = 1}) end,
            "farol: scaled_dot_product_attention: unknown option 'mask' (valid: attn_mask, key_padding_mask, scale)")()
    H.fails(function() sdpa(q, k, v, nil, 1) end, "takes at most 4 arguments, got 5")()
    H.fails(function() sdpa(q, k) end, "farol.Tensor expected")()
    H.fails(function() sdpa(farol.zeros(2, 3, 4, "int64"), k, v) end, "scaled_dot_product_attention")()
    assert.equals(farol.scaled_dot_product_attention, nn.functional.scaled_dot_product_attention)
  end)

  it("gives the same bits with 1 and 2 threads, forward and backward", function()
    local n = farol.get_num_threads()
    farol.manual_seed(7)
    local q, k, v = farol.randn(4, 4, 64, 16), farol.randn(4, 4, 64, 16), farol.randn(4, 4, 64, 16)
    local kpm = farol.zeros(4, 64, "int64")
    kpm:narrow(2, 60, 5):fill_(1)
    local function run()
      local qq = q:detach():requires_grad(true)
      local out = farol.scaled_dot_product_attention(qq, k, v, {key_padding_mask = kpm})
      return out, farol.grad({(out * out):sum()}, {qq})[1]
    end
    farol.set_num_threads(1)
    local o1, g1 = run()
    farol.set_num_threads(2)
    local o2, g2 = run()
    farol.set_num_threads(n)
    H.close(o1, o2, 0, 0, "output")
    H.close(g1, g2, 0, 0, "gradient")
  end)
end)

describe("MultiheadAttention's fused path", function()
  -- the fused call (need_weights false) against the unfused one (need_weights true)
  local function compare(m, q, k, v, opts, what)
    local function run(need)
      local o = {need_weights = need}
      for key, val in pairs(opts or {}) do o[key] = val end
      local qq = q:detach():requires_grad(true)
      local kk = rawequal(k, q) and qq or k:detach():requires_grad(true)
      local vv = rawequal(v, k) and kk or v:detach():requires_grad(true)
      local out = m(qq, kk, vv, o)
      local ins = {qq}
      if not rawequal(kk, qq) then ins[#ins + 1] = kk end
      if not rawequal(vv, kk) then ins[#ins + 1] = vv end
      return out, farol.grad({(out * out):sum()}, ins)
    end
    local of, gf = run(false)
    local ou, gu = run(true)
    H.close(of, ou, 1e-12, 1e-12, what .. ": output")
    for i = 1, #gu do H.close(gf[i], gu[i], 1e-11, 1e-11, what .. ": gradient " .. i) end
  end

  local function randomise(m)
    farol.no_grad(function()
      for _, p in ipairs(m:parameters()) do p:copy_(farol.randn(table.unpack(p:size())):to(p:dtype()) * 0.5) end
    end)
    return m
  end

  it("matches the unfused path with every mask kind and layout", function()
    farol.manual_seed(3)
    local mb = randomise(nn.MultiheadAttention(8, 2, {batch_first = true}):to("float64"))
    local ms = randomise(nn.MultiheadAttention(8, 2):to("float64"))
    local x = randn64(3, 5, 8)
    local pad = farol.tensor({{0, 0, 0, 0, 0}, {0, 0, 0, 1, 1}, {1, 0, 0, 0, 0}}, "float64")
    local causal = farol.tensor({{0, -math.huge, -math.huge, -math.huge, -math.huge},
                                 {0, 0, -math.huge, -math.huge, -math.huge}, {0, 0, 0, -math.huge, -math.huge},
                                 {0, 0, 0, 0, -math.huge}, {0, 0, 0, 0, 0}}, "float64")
    local forbid = causal:ne(0):to("int64")
    compare(mb, x, x, x, nil, "self, batch_first")
    compare(mb, x, x, x, {key_padding_mask = pad}, "float padding mask")
    compare(mb, x, x, x, {key_padding_mask = pad:to("int64")}, "int64 padding mask")
    compare(mb, x, x, x, {attn_mask = causal, key_padding_mask = pad}, "float attn_mask")
    compare(mb, x, x, x, {attn_mask = forbid}, "int64 attn_mask")
    compare(mb, x, x, x, {attn_mask = randn64(6, 5, 5)}, "per-head float attn_mask")
    local xs = randn64(5, 3, 8)
    compare(ms, xs, xs, xs, {key_padding_mask = pad}, "self, sequence-first")
    compare(ms, randn64(4, 3, 8), xs, xs, {key_padding_mask = pad}, "cross, k == v")
    compare(ms, randn64(4, 3, 8), xs, randn64(5, 3, 8), nil, "cross, q k v")
    compare(ms, randn64(5, 8), randn64(5, 8), randn64(5, 8), nil, "unbatched")
    -- a float attn_mask that takes a gradient
    local am = randn64(5, 5)
    local function mask_grad(need)
      local a = am:detach():requires_grad(true)
      local out = mb(x, x, x, {attn_mask = a, need_weights = need})
      return farol.grad({(out * out):sum()}, {a})[1]
    end
    H.close(mask_grad(false), mask_grad(true), 1e-11, 1e-11, "attn_mask gradient")
  end)

  it("matches the unfused path in float32 on the bench's shapes, and with all keys forbidden", function()
    farol.manual_seed(5)
    local m = nn.MultiheadAttention(32, 4, {batch_first = true})
    local x = farol.randn(3, 16, 32)
    local pad = farol.zeros(3, 16)
    pad[2]:narrow(1, 10, 7):fill_(1)
    local of = m(x, x, x, {key_padding_mask = pad})
    local ou = m(x, x, x, {key_padding_mask = pad, need_weights = true})
    H.close(of, ou, 1e-5, 1e-6, "float32")
    pad[3]:fill_(1)
    local nan = m(x, x, x, {key_padding_mask = pad})
    local ref = m(x, x, x, {key_padding_mask = pad, need_weights = true})
    H.close(nan, ref, 1e-5, 1e-6, "all keys forbidden")
    assert.is_true(nan:get(3, 1, 1) ~= nan:get(3, 1, 1))
  end)

  it("gives a transformer layer's saliency bitwise the same with 1 and 2 threads", function()
    local n = farol.get_num_threads()
    farol.manual_seed(11)
    local layer = nn.TransformerEncoderLayer(32, 4, {dim_feedforward = 64, dropout = 0, batch_first = true}):eval()
    local x = farol.randn(4, 64, 32)
    local pad = farol.zeros(4, 64)
    pad[2]:narrow(1, 50, 15):fill_(1)
    local sal = farol.Saliency(function(t) return layer(t, {src_key_padding_mask = pad}):sum(2) end)
    farol.set_num_threads(1)
    local a = sal:attribute(x, 3)
    farol.set_num_threads(2)
    local b = sal:attribute(x, 3)
    farol.set_num_threads(n)
    H.close(a, b, 0, 0, "saliency")
  end)
end)
