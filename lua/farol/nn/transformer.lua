-- MultiheadAttention and TransformerEncoderLayer, with PyTorch's parameter
-- names (in_proj_weight, out_proj.weight, self_attn.*, linear1.*, norm1.* ...)
-- so that their state_dicts load unchanged.
local farol = require("farol")

return function(nn)
  local check_int, fail, check_opts = nn._check_int, nn._fail, nn._check_opts

  local function shape_str(t) return "[" .. table.concat(t:size(), ", ") .. "]" end

  -- ------------------------------------------------- MultiheadAttention

  -- Masks.  farol has no boolean dtype, so:
  --   key_padding_mask (N, S) or (S): any nonzero entry means "ignore this
  --     key" (mask:eq(0) on a 1 = token / 0 = padding mask gives one);
  --   attn_mask (L, S) or (N * heads, L, S): a floating mask is added to the
  --     scores, as PyTorch's float masks (use -math.huge to forbid); an int64
  --     mask forbids where it is nonzero, as PyTorch's boolean masks.
  -- Forbidden scores become -inf before the softmax; a query whose keys are
  -- all forbidden gets NaN, as in PyTorch.

  local MHA = nn.Module:extend("MultiheadAttention")
  nn.MultiheadAttention = MHA

  function MHA:init(embed_dim, num_heads, opts)
    local fn = "nn.MultiheadAttention"
    opts = check_opts(fn, opts, {"batch_first", "bias", "dropout"})
    check_int(fn, "embed_dim", embed_dim)
    check_int(fn, "num_heads", num_heads)
    if embed_dim % num_heads ~= 0 then
      fail("%s: embed_dim (%d) must be divisible by num_heads (%d)", fn, embed_dim, num_heads)
    end
    local dropout = opts.dropout or 0
    if type(dropout) ~= "number" or dropout < 0 or dropout > 1 then
      fail("%s: dropout must be a number in [0, 1], got %s", fn, tostring(dropout))
    end
    self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
    self.batch_first, self.dropout = opts.batch_first == true, dropout
    local bias = opts.bias ~= false

    -- PyTorch: xavier_uniform_ in_proj_weight, zero biases, default Linear
    -- init for out_proj.weight
    local bound = math.sqrt(6 / (embed_dim + 3 * embed_dim))
    self:parameter("in_proj_weight", nn._uniform(bound, 3 * embed_dim, embed_dim))
    if bias then self:parameter("in_proj_bias", farol.zeros(3 * embed_dim)) end
    self.out_proj = nn.Linear(embed_dim, embed_dim, {bias = bias})
    if bias then farol.no_grad(function() self.out_proj.bias:zero_() end) end
  end

  -- (B, T, E) -> (B, heads, T, head_dim), a view
  local function split_heads(self, t)
    return t:view(t:size(1), t:size(2), self.num_heads, self.head_dim):transpose(2, 3)
  end

  -- q, k, v projections of batch-first (N, T, E) inputs; one product for
  -- all three in self-attention, one for k and v when key == value
  local function project(self, query, key, value)
    local w, b, e = self.in_proj_weight, self.in_proj_bias, self.embed_dim
    local function rows(t, i, n) return t and t:narrow(1, i, n) end
    if rawequal(query, key) and rawequal(key, value) then
      local qkv = farol.linear(query, w, b)                     -- (N, L, 3E)
      local n, l = qkv:size(1), qkv:size(2)
      qkv = qkv:view(n, l, 3, self.num_heads, self.head_dim):permute(3, 1, 4, 2, 5)
      return qkv[1], qkv[2], qkv[3]                             -- (N, H, L, hd) each
    end
    local q = split_heads(self, farol.linear(query, rows(w, 1, e), rows(b, 1, e)))
    if rawequal(key, value) then
      local kv = farol.linear(key, rows(w, e + 1, 2 * e), rows(b, e + 1, 2 * e))
      local n, s = kv:size(1), kv:size(2)
      kv = kv:view(n, s, 2, self.num_heads, self.head_dim):permute(3, 1, 4, 2, 5)
      return q, kv[1], kv[2]
    end
    return q, split_heads(self, farol.linear(key, rows(w, e + 1, e), rows(b, e + 1, e))),
           split_heads(self, farol.linear(value, rows(w, 2 * e + 1, e), rows(b, 2 * e + 1, e)))
  end

  local function check_input(fn, name, t, e)
    if not farol.is_tensor(t) then fail("%s: %s must be a tensor, got %s", fn, name, type(t)) end
    if (t:dim() ~= 3 and t:dim() ~= 2) or t:size(-1) ~= e then
      fail("%s: %s must be (L, N, %d), (N, L, %d) or (L, %d), got %s", fn, name, e, e, e, shape_str(t))
    end
  end

  -- forward(query, key, value [, {key_padding_mask, attn_mask, need_weights,
  -- average_attn_weights}]) -> output [, weights].  Unlike PyTorch,
  -- need_weights defaults to false, so a call returns one value unless the
  -- weights are asked for: (N, L, S) averaged over heads, or (N, heads, L, S)
  -- with average_attn_weights = false.
  function MHA:forward(query, key, value, opts)
    local fn = "nn.MultiheadAttention"
    opts = check_opts(fn, opts, {"key_padding_mask", "attn_mask", "need_weights",
                                       "average_attn_weights"})
    local e, heads = self.embed_dim, self.num_heads
    check_input(fn, "query", query, e)
    check_input(fn, "key", key, e)
    check_input(fn, "value", value, e)
    local batched = query:dim() == 3
    if key:dim() ~= query:dim() or value:dim() ~= query:dim() then
      fail("%s: query %s, key %s and value %s must all be batched or all unbatched", fn,
           shape_str(query), shape_str(key), shape_str(value))
    end

    -- to batch-first (N, T, E) views, keeping query/key/value identities
    local function bf(t)
      if not batched then return t:unsqueeze(1) end
      return self.batch_first and t or t:transpose(1, 2)
    end
    local q_in = bf(query)
    local k_in = rawequal(key, query) and q_in or bf(key)
    local v_in = rawequal(value, key) and k_in or bf(value)
    local n, l, s = q_in:size(1), q_in:size(2), k_in:size(2)
    if k_in:size(1) ~= n or v_in:size(1) ~= n or v_in:size(2) ~= s then
      fail("%s: query %s, key %s and value %s disagree on batch or source length", fn,
           shape_str(query), shape_str(key), shape_str(value))
    end

    local kpm = opts.key_padding_mask
    if kpm ~= nil then
      local want = batched and {n, s} or {s}
      if not farol.is_tensor(kpm) or shape_str(kpm) ~= "[" .. table.concat(want, ", ") .. "]" then
        fail("%s: key_padding_mask must be a tensor of shape [%s], got %s", fn, table.concat(want, ", "),
             farol.is_tensor(kpm) and shape_str(kpm) or type(kpm))
      end
      kpm = kpm:ne(0):to("int64"):view(n, s)
    end
    local am = opts.attn_mask
    if am ~= nil then
      if not farol.is_tensor(am) then fail("%s: attn_mask must be a tensor, got %s", fn, type(am)) end
      local ok = (am:dim() == 2 and am:size(1) == l and am:size(2) == s)
              or (am:dim() == 3 and am:size(1) == n * heads and am:size(2) == l and am:size(3) == s)
      if not ok then
        fail("%s: attn_mask must be [%d, %d] or [%d, %d, %d], got %s", fn, l, s, n * heads, l, s, shape_str(am))
      end
      if am:dim() == 3 then am = am:view(n, heads, l, s) end
    end

    local o, attn
    local dropout = self.dropout > 0 and self.training
    if not opts.need_weights and not dropout then
      -- one fused op: scores, masks, softmax and the product with v
      local mask_opts = {key_padding_mask = kpm,
                         attn_mask = am and (am:dtype() == "int64" and am or am:to(query:dtype()))}
      if rawequal(q_in, k_in) and rawequal(k_in, v_in) then
        o = farol._self_attention(farol.linear(q_in, self.in_proj_weight, self.in_proj_bias), heads,
                                  mask_opts)                     -- (N, L, E)
      else
        local q, k, v = project(self, q_in, k_in, v_in)
        o = farol.scaled_dot_product_attention(q, k, v, mask_opts):transpose(2, 3):reshape(n, l, e)
      end
    else
      local q, k, v = project(self, q_in, k_in, v_in)
      q = q * math.sqrt(1 / self.head_dim)
      local scores = farol.matmul(q, k:transpose(3, 4))           -- (N, H, L, S)
      if kpm ~= nil then scores = scores:masked_fill(kpm:view(n, 1, 1, s), -math.huge) end
      if am ~= nil then
        if am:dtype() == "int64" then
          scores = scores:masked_fill(am:ne(0), -math.huge)
        else
          scores = scores + am:to(scores:dtype())
        end
      end
      attn = farol.softmax(scores, -1)
      if dropout then attn = farol.dropout(attn, self.dropout, true) end
      -- (N, H, L, hd) -> (L, N, E) or (N, L, E) rows for out_proj
      o = farol.matmul(attn, v)
      if self.batch_first or not batched then
        o = o:transpose(2, 3):reshape(n, l, e)
      else
        o = o:permute(3, 1, 2, 4):reshape(l, n, e)
      end
    end
    local out = self.out_proj(o)
    -- the fused path's rows are batch-first: back to (L, N, E) as a view
    if attn == nil and batched and not self.batch_first then out = out:transpose(1, 2) end
    if not batched then out = out:squeeze(1) end

    if not opts.need_weights then return out end
    local w = attn
    if opts.average_attn_weights ~= false then w = w:mean(2) end
    if not batched then w = w:squeeze(1) end
    return out, w
  end

  -- -------------------------------------------- TransformerEncoderLayer

  local activations = {
    relu = function(x) return x:relu() end,
    gelu = function(x) return x:gelu() end,
  }

  local Layer = nn.Module:extend("TransformerEncoderLayer")
  nn.TransformerEncoderLayer = Layer

  -- activation: "relu", "gelu", a function or a module (a module becomes
  -- the child "activation", as in PyTorch)
  function Layer:init(d_model, nhead, opts)
    local fn = "nn.TransformerEncoderLayer"
    opts = check_opts(fn, opts, {"dim_feedforward", "dropout", "activation", "batch_first",
                                       "norm_first", "layer_norm_eps", "bias"})
    local dff = opts.dim_feedforward or 2048
    check_int(fn, "dim_feedforward", dff)
    local p = opts.dropout
    if p == nil then p = 0.1 end
    local eps = opts.layer_norm_eps or 1e-5
    local bias = opts.bias ~= false
    local act = opts.activation or "relu"
    if type(act) == "string" then
      if not activations[act] then
        fail("%s: activation must be \"relu\", \"gelu\", a function or a module, got %q", fn, act)
      end
      rawset(self, "_act", activations[act])
    elseif nn.is_module(act) then
      rawset(self, "_act", act)
    elseif type(act) == "function" then
      rawset(self, "_act", act)
    else
      fail("%s: activation must be \"relu\", \"gelu\", a function or a module, got %s", fn, type(act))
    end

    self.self_attn = nn.MultiheadAttention(d_model, nhead,
                                           {dropout = p, batch_first = opts.batch_first, bias = bias})
    self.linear1 = nn.Linear(d_model, dff, {bias = bias})
    self.dropout = nn.Dropout(p)
    self.linear2 = nn.Linear(dff, d_model, {bias = bias})
    self.norm_first = opts.norm_first == true
    self.norm1 = nn.LayerNorm(d_model, {eps = eps, bias = bias})
    self.norm2 = nn.LayerNorm(d_model, {eps = eps, bias = bias})
    self.dropout1 = nn.Dropout(p)
    self.dropout2 = nn.Dropout(p)
    if nn.is_module(act) then self.activation = act end   -- last, as in PyTorch
  end

  -- layer(src [, {src_key_padding_mask = m, src_mask = m}]): masks as in
  -- MultiheadAttention (src_mask is its attn_mask)
  function Layer:forward(src, opts)
    opts = check_opts("nn.TransformerEncoderLayer", opts, {"src_key_padding_mask", "src_mask"})
    local mask_opts = {key_padding_mask = opts.src_key_padding_mask, attn_mask = opts.src_mask}
    local function sa(x) return self.dropout1(self.self_attn(x, x, x, mask_opts)) end
    local function ff(x)
      return self.dropout2(self.linear2(self.dropout(self._act(self.linear1(x)))))
    end
    local x = src
    if self.norm_first then
      x = x + sa(self.norm1(x))
      return x + ff(self.norm2(x))
    end
    x = self.norm1(x + sa(x))
    return self.norm2(x + ff(x))
  end
end
