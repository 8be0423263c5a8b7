-- nn.LSTM and nn.GRU, built from farol's ops, with PyTorch's parameter
-- names (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, "_reverse" for
-- the backward direction), gate order (LSTM: i, f, g, o; GRU: r, z, n),
-- shapes and options, so their state_dicts load unchanged.
--
--   local lstm = nn.LSTM(10, 20, {num_layers = 2, batch_first = true})
--   local out, state = lstm(x [, {h0, c0}])   -- state = {h_n, c_n}
--   local gru = nn.GRU(10, 20)
--   local out, h_n = gru(x [, h0])
local farol = require("farol")

return function(nn)
  local check_int, fail, check_opts = nn._check_int, nn._fail, nn._check_opts

  local function shape_str(t) return "[" .. table.concat(t:size(), ", ") .. "]" end

  -- one step of each cell: xp = x W_ih^T + b_ih for this step (N, G*H)
  local function lstm_cell(self, xp, h, c, w_hh, b_hh)
    local H = self.hidden_size
    local gates = xp + farol.linear(h, w_hh, b_hh)
    local i = gates:narrow(2, 1, H):sigmoid()
    local f = gates:narrow(2, H + 1, H):sigmoid()
    local g = gates:narrow(2, 2 * H + 1, H):tanh()
    local o = gates:narrow(2, 3 * H + 1, H):sigmoid()
    c = f * c + i * g
    return o * c:tanh(), c
  end

  local function gru_cell(self, xp, h, _, w_hh, b_hh)
    local H = self.hidden_size
    local hp = farol.linear(h, w_hh, b_hh)
    local r = (xp:narrow(2, 1, H) + hp:narrow(2, 1, H)):sigmoid()
    local z = (xp:narrow(2, H + 1, H) + hp:narrow(2, H + 1, H)):sigmoid()
    local n = (xp:narrow(2, 2 * H + 1, H) + r * hp:narrow(2, 2 * H + 1, H)):tanh()
    return n + z * (h - n)  -- (1 - z) * n + z * h
  end

  -- PyTorch's RNNBase options and parameters; gates: 4 (LSTM) or 3 (GRU)
  local function rnn_init(fn, gates)
    return function(self, input_size, hidden_size, opts)
      opts = check_opts(fn, opts, {"num_layers", "bias", "batch_first", "dropout", "bidirectional"})
      check_int(fn, "input_size", input_size)
      check_int(fn, "hidden_size", hidden_size)
      local layers = opts.num_layers or 1
      check_int(fn, "num_layers", layers)
      for _, k in ipairs({"bias", "batch_first", "bidirectional"}) do
        if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
          fail("%s: %s must be a boolean, got %s", fn, k, type(opts[k]))
        end
      end
      local dropout = opts.dropout or 0
      if type(dropout) ~= "number" or dropout < 0 or dropout > 1 then
        fail("%s: dropout must be a number in [0, 1], got %s", fn, tostring(dropout))
      end
      self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, layers
      self.bias, self.batch_first = opts.bias ~= false, opts.batch_first == true
      self.bidirectional, self.dropout = opts.bidirectional == true, dropout
      local dirs = self.bidirectional and 2 or 1
      -- every weight and bias U(-1/sqrt(hidden), 1/sqrt(hidden)), as PyTorch;
      -- registered per layer and direction in PyTorch's order
      local bound = 1 / math.sqrt(hidden_size)
      for l = 0, layers - 1 do
        local in_l = l == 0 and input_size or hidden_size * dirs
        for d = 1, dirs do
          local sfx = "_l" .. l .. (d == 2 and "_reverse" or "")
          self:parameter("weight_ih" .. sfx, nn._uniform(bound, gates * hidden_size, in_l))
          self:parameter("weight_hh" .. sfx, nn._uniform(bound, gates * hidden_size, hidden_size))
          if self.bias then
            self:parameter("bias_ih" .. sfx, nn._uniform(bound, gates * hidden_size))
            self:parameter("bias_hh" .. sfx, nn._uniform(bound, gates * hidden_size))
          end
        end
      end
    end
  end

  -- x: (T, N, in) after batch_first / unbatched handling; h0, c0: (L*D, N, H)
  -- or nil.  Returns output (T, N, D*H), h_n, c_n (c_n nil for GRU).
  local function run(self, x, h0, c0, cell, is_lstm)
    local T, N, H = x:size(1), x:size(2), self.hidden_size
    local dirs = self.bidirectional and 2 or 1
    local hs, cs = {}, {}
    for l = 0, self.num_layers - 1 do
      if l > 0 and self.training and self.dropout > 0 then x = farol.dropout(x, self.dropout, true) end
      local outs = {}
      for d = 1, dirs do
        local sfx = "_l" .. l .. (d == 2 and "_reverse" or "")
        local k = l * dirs + d  -- 1-based layer-direction index into h0
        local h = h0 and h0[k] or farol.zeros({N, H}, x:dtype())
        local c = is_lstm and (c0 and c0[k] or farol.zeros({N, H}, x:dtype())) or nil
        -- the input projection of all steps in one product
        local xp = farol.linear(x, self["weight_ih" .. sfx], self["bias_ih" .. sfx])
        local w_hh, b_hh = self["weight_hh" .. sfx], self["bias_hh" .. sfx]
        local steps = {}
        local first, last, step = 1, T, 1
        if d == 2 then first, last, step = T, 1, -1 end
        for t = first, last, step do
          h, c = cell(self, xp[t], h, c, w_hh, b_hh)
          steps[t] = h
        end
        outs[d] = farol.stack(steps, 1)
        hs[#hs + 1], cs[#cs + 1] = h, c
      end
      x = dirs == 2 and farol.cat(outs, 3) or outs[1]
    end
    return x, farol.stack(hs, 1), is_lstm and farol.stack(cs, 1) or nil
  end

  -- checks an initial state: (L*D, N, H), or (L*D, H) for an unbatched input
  local function check_state(self, fn, name, s, batched, N)
    if s == nil then return nil end
    if not farol.is_tensor(s) then fail("%s: %s must be a tensor, got %s", fn, name, type(s)) end
    local LD = self.num_layers * (self.bidirectional and 2 or 1)
    local want = batched and {LD, N, self.hidden_size} or {LD, self.hidden_size}
    if shape_str(s) ~= "[" .. table.concat(want, ", ") .. "]" then
      fail("%s: %s must have shape [%s], got %s", fn, name, table.concat(want, ", "), shape_str(s))
    end
    return batched and s or s:unsqueeze(2)
  end

  local function rnn_forward(fn, cell, is_lstm)
    return function(self, x, state, ...)
      if select("#", ...) > 0 then fail("%s: takes (input [, state]), got %d extra arguments", fn, select("#", ...)) end
      if not farol.is_tensor(x) then fail("%s: input must be a tensor, got %s", fn, type(x)) end
      if x:dim() ~= 2 and x:dim() ~= 3 then
        fail("%s: input must be 2-D (unbatched) or 3-D, got %s", fn, shape_str(x))
      end
      if x:size(-1) ~= self.input_size then
        fail("%s: input has %d features, the module expects %d (input %s)", fn, x:size(-1), self.input_size,
             shape_str(x))
      end
      local batched = x:dim() == 3
      if x:size((batched and self.batch_first) and 2 or 1) == 0 then  -- as PyTorch: no step to run
        fail("%s: the sequence length must be at least 1 (input %s)", fn, shape_str(x))
      end
      if not batched then x = x:unsqueeze(2)
      elseif self.batch_first then x = x:transpose(1, 2) end
      local N = x:size(2)
      local h0, c0
      if is_lstm then
        if state ~= nil and (type(state) ~= "table" or #state ~= 2) then
          fail("%s: state must be a table {h0, c0}, got %s", fn, type(state))
        end
        if state then
          h0 = check_state(self, fn, "h0", state[1], batched, N)
          c0 = check_state(self, fn, "c0", state[2], batched, N)
        end
      else
        h0 = check_state(self, fn, "h0", state, batched, N)
      end
      local out, h_n, c_n = run(self, x, h0, c0, cell, is_lstm)
      if not batched then
        out, h_n, c_n = out:squeeze(2), h_n:squeeze(2), c_n and c_n:squeeze(2)
      elseif self.batch_first then
        out = out:transpose(1, 2)
      end
      if is_lstm then return out, {h_n, c_n} end
      return out, h_n
    end
  end

  local LSTM = nn.Module:extend("LSTM")
  LSTM.init = rnn_init("nn.LSTM", 4)
  LSTM.forward = rnn_forward("nn.LSTM", lstm_cell, true)
  nn.LSTM = LSTM

  local GRU = nn.Module:extend("GRU")
  GRU.init = rnn_init("nn.GRU", 3)
  GRU.forward = rnn_forward("nn.GRU", gru_cell, false)
  nn.GRU = GRU
end
