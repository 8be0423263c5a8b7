-- Convolution, pooling, normalisation, embedding and dropout modules, with
-- PyTorch's argument names, defaults, initialisation and state_dict keys.
local farol = require("farol")

return function(nn)
  local simple, uniform, check_int, fail = nn._simple, nn._uniform, nn._check_int, nn._fail
  local check_opts = nn._check_opts

  -- v as an array of n integers >= min: a number is repeated, an array of
  -- n numbers is taken as is (PyTorch's _pair / _single)
  local function tuple(fn, name, v, n, min)
    if math.type(v) == "integer" then
      check_int(fn, name, v, min)
      local t = {}
      for i = 1, n do t[i] = v end
      return t
    end
    if type(v) == "table" and #v == n then
      local t = {}
      for i = 1, n do
        check_int(fn, name, v[i], min)
        t[i] = v[i]
      end
      return t
    end
    fail("%s: %s must be an integer%s, got %s", fn, name,
         n > 1 and " or an array of " .. n .. " integers" or "", tostring(v))
  end

  local function check_prob(fn, p)
    if type(p) ~= "number" or p < 0 or p > 1 then
      fail("%s: p must be a number in [0, 1], got %s", fn, tostring(p))
    end
  end

  local function check_eps(fn, eps)
    if type(eps) ~= "number" or not (eps >= 0) then
      fail("%s: eps must be a number >= 0, got %s", fn, tostring(eps))
    end
  end

  -- ----------------------------------------------------------------- Conv

  -- Conv1d and Conv2d share everything but the number of spatial dims.
  -- padding may also be "valid" (0) or "same" (stride 1; an odd total
  -- padding puts the extra row/column at the end, as PyTorch does).
  local function conv_init(fn, nd)
    return function(self, in_channels, out_channels, kernel_size, opts)
      opts = check_opts(fn, opts, {"stride", "padding", "dilation", "groups", "bias"})
      check_int(fn, "in_channels", in_channels)
      check_int(fn, "out_channels", out_channels)
      local k = tuple(fn, "kernel_size", kernel_size, nd)
      local stride = tuple(fn, "stride", opts.stride or 1, nd)
      local dilation = tuple(fn, "dilation", opts.dilation or 1, nd)
      local groups = opts.groups or 1
      check_int(fn, "groups", groups)
      if in_channels % groups ~= 0 or out_channels % groups ~= 0 then
        fail("%s: groups (%d) must divide in_channels (%d) and out_channels (%d)",
             fn, groups, in_channels, out_channels)
      end
      local padding = opts.padding or 0
      if padding == "same" then
        for i = 1, nd do
          if stride[i] ~= 1 then fail("%s: padding \"same\" needs stride 1, got stride %d", fn, stride[i]) end
        end
      elseif padding == "valid" then
        padding = tuple(fn, "padding", 0, nd, 0)
      else
        padding = tuple(fn, "padding", padding, nd, 0)
      end
      self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
      self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

      local shape, fan_in = {out_channels, in_channels // groups}, in_channels // groups
      for i = 1, nd do
        shape[#shape + 1] = k[i]
        fan_in = fan_in * k[i]
      end
      local bound = 1 / math.sqrt(fan_in)
      self:parameter("weight", uniform(bound, shape))
      if opts.bias ~= false then self:parameter("bias", uniform(bound, out_channels)) end

      -- the options table handed to the op, and the explicit padding that
      -- "same" needs when it is not symmetric
      local call = {stride = nd == 1 and stride[1] or stride, dilation = nd == 1 and dilation[1] or dilation,
                    groups = groups}
      if padding == "same" then
        local sym, pads = {}, {}
        for i = 1, nd do
          local total = dilation[i] * (k[i] - 1)
          sym[i] = total // 2
          -- farol.pad lists the last dim first, as torch.nn.functional.pad
          pads[2 * (nd - i) + 1], pads[2 * (nd - i) + 2] = 0, total % 2
        end
        call.padding = nd == 1 and sym[1] or sym
        for _, p in ipairs(pads) do
          if p ~= 0 then rawset(self, "_same_pads", pads) end
        end
      else
        call.padding = nd == 1 and padding[1] or padding
      end
      rawset(self, "_call", call)
    end
  end

  local function conv_forward(op)
    return function(self, x)
      if self._same_pads then x = farol.pad(x, self._same_pads) end
      return op(x, self.weight, self.bias, self._call)
    end
  end

  simple("Conv1d", conv_forward(farol.conv1d), conv_init("nn.Conv1d", 1))
  simple("Conv2d", conv_forward(farol.conv2d), conv_init("nn.Conv2d", 2))

  -- -------------------------------------------------------------- Pooling

  -- stride defaults to the kernel size, as PyTorch
  local function pool_init(fn, valid)
    return function(self, kernel_size, opts)
      opts = check_opts(fn, opts, valid)
      local k = tuple(fn, "kernel_size", kernel_size, 2)
      local stride = tuple(fn, "stride", opts.stride or k, 2)
      local padding = tuple(fn, "padding", opts.padding or 0, 2, 0)
      for i = 1, 2 do
        if 2 * padding[i] > k[i] then
          fail("%s: padding (%d) must be at most half the kernel size (%d)", fn, padding[i], k[i])
        end
      end
      for _, flag in ipairs({"ceil_mode", "count_include_pad"}) do
        if opts[flag] ~= nil and type(opts[flag]) ~= "boolean" then
          fail("%s: %s must be a boolean, got %s", fn, flag, type(opts[flag]))
        end
      end
      self.kernel_size, self.stride, self.padding = k, stride, padding
      self.ceil_mode = opts.ceil_mode == true
      local call = {stride = stride, padding = padding, ceil_mode = self.ceil_mode}
      if fn == "nn.AvgPool2d" then
        self.count_include_pad = opts.count_include_pad ~= false
        call.count_include_pad = self.count_include_pad
      end
      rawset(self, "_call", call)
    end
  end

  simple("MaxPool2d", function(self, x) return farol.max_pool2d(x, self.kernel_size, self._call) end,
    pool_init("nn.MaxPool2d", {"stride", "padding", "ceil_mode"}))
  simple("AvgPool2d", function(self, x) return farol.avg_pool2d(x, self.kernel_size, self._call) end,
    pool_init("nn.AvgPool2d", {"stride", "padding", "ceil_mode", "count_include_pad"}))

  simple("AdaptiveAvgPool2d", function(self, x) return farol.adaptive_avg_pool2d(x, self.output_size) end,
    function(self, output_size)
      self.output_size = tuple("nn.AdaptiveAvgPool2d", "output_size", output_size, 2)
    end)

  -- ---------------------------------------------------------- BatchNorm2d

  -- Eval mode normalises with the running statistics (farol.batch_norm).
  -- Training mode normalises with the batch's mean and biased variance over
  -- (N, H, W), differentiably, and moves the running statistics towards the
  -- batch's mean and unbiased variance by `momentum`, as PyTorch.
  -- track_running_stats = false: no buffers, batch statistics always.
  simple("BatchNorm2d", function(self, x)
      local fn = "nn.BatchNorm2d"
      if not farol.is_tensor(x) then fail("%s: input must be a tensor, got %s", fn, type(x)) end
      if x:dim() ~= 4 then
        fail("%s: expected a 4-D input (N, C, H, W), got %d-D [%s]", fn, x:dim(), table.concat(x:size(), ", "))
      end
      if x:size(2) ~= self.num_features then
        fail("%s: input has %d channels, the module expects %d", fn, x:size(2), self.num_features)
      end
      if not self.training and self.track_running_stats then
        return farol.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.eps)
      end

      local n = x:numel() // x:size(2)
      if n <= 1 then
        fail("%s: expected more than 1 value per channel in training mode, got input [%s]",
             fn, table.concat(x:size(), ", "))
      end
      local function channel_mean(t) return t:mean(1, true):mean(3, true):mean(4, true) end
      local mean = channel_mean(x)              -- (1, C, 1, 1)
      local centred = x - mean
      local var = channel_mean(centred * centred)
      local y = centred * (var + self.eps):rsqrt()
      if self.weight then
        local c = self.num_features
        y = y * self.weight:view(1, c, 1, 1) + self.bias:view(1, c, 1, 1)
      end

      if self.training and self.track_running_stats then
        local m = self.momentum
        farol.no_grad(function()
          local rm, rv = self.running_mean, self.running_var
          local batch_mean = mean:detach():view(-1):to(rm:dtype())
          local batch_var = (var:detach():view(-1) * (n / (n - 1))):to(rv:dtype())
          rm:copy_(rm * (1 - m) + batch_mean * m)
          rv:copy_(rv * (1 - m) + batch_var * m)
          local nbt = self.num_batches_tracked
          nbt:fill_(nbt:item() + 1)
        end)
      end
      return y
    end,
    function(self, num_features, opts)
      local fn = "nn.BatchNorm2d"
      opts = check_opts(fn, opts, {"eps", "momentum", "affine", "track_running_stats"})
      check_int(fn, "num_features", num_features)
      local eps, momentum = opts.eps or 1e-5, opts.momentum or 0.1
      check_eps(fn, eps)
      if type(momentum) ~= "number" or momentum < 0 or momentum > 1 then
        fail("%s: momentum must be a number in [0, 1], got %s", fn, tostring(momentum))
      end
      self.num_features, self.eps, self.momentum = num_features, eps, momentum
      self.affine = opts.affine ~= false
      self.track_running_stats = opts.track_running_stats ~= false
      if self.affine then
        self:parameter("weight", farol.ones(num_features))
        self:parameter("bias", farol.zeros(num_features))
      end
      if self.track_running_stats then
        self:buffer("running_mean", farol.zeros(num_features))
        self:buffer("running_var", farol.ones(num_features))
        self:buffer("num_batches_tracked", farol.tensor(0, "int64"))
      end
    end)

  -- ------------------------------------------------------------ LayerNorm

  simple("LayerNorm", function(self, x)
      return farol.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
    end,
    function(self, normalized_shape, opts)
      local fn = "nn.LayerNorm"
      opts = check_opts(fn, opts, {"eps", "elementwise_affine", "bias"})
      local shape = {}
      if math.type(normalized_shape) == "integer" then
        shape[1] = normalized_shape
      elseif type(normalized_shape) == "table" and not farol.is_tensor(normalized_shape)
             and rawlen(normalized_shape) > 0 then
        -- raw, as farol reads every argument array: metamethods have no say
        for i = 1, rawlen(normalized_shape) do shape[i] = rawget(normalized_shape, i) end
      else
        fail("%s: normalized_shape must be an integer or an array of integers, got %s", fn,
             tostring(normalized_shape))
      end
      for _, s in ipairs(shape) do check_int(fn, "normalized_shape", s) end
      local eps = opts.eps or 1e-5
      check_eps(fn, eps)
      self.normalized_shape, self.eps = shape, eps
      self.elementwise_affine = opts.elementwise_affine ~= false
      if self.elementwise_affine then
        self:parameter("weight", farol.ones(shape))
        if opts.bias ~= false then self:parameter("bias", farol.zeros(shape)) end
      end
    end)

  -- ------------------------------------------------------------ Embedding

  -- forward(idx): idx holds 1-based int64 indices; weight starts N(0, 1)
  simple("Embedding", function(self, idx) return farol.embedding(idx, self.weight) end,
    function(self, num_embeddings, embedding_dim)
      check_int("nn.Embedding", "num_embeddings", num_embeddings)
      check_int("nn.Embedding", "embedding_dim", embedding_dim)
      self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
      self:parameter("weight", farol.randn(num_embeddings, embedding_dim))
    end)

  -- -------------------------------------------------------------- Dropout

  simple("Dropout", function(self, x) return farol.dropout(x, self.p, self.training) end,
    function(self, p, inplace)  -- inplace: PyTorch's flag, no effect on results
      if p == nil then p = 0.5 end
      check_prob("nn.Dropout", p)
      if inplace ~= nil and type(inplace) ~= "boolean" then
        fail("nn.Dropout: inplace must be a boolean, got %s", type(inplace))
      end
      self.p = p
    end)
end
