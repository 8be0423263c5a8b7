-- farol.image: image files in and out (PNG and JPEG read, PNG written; the C
-- part is src/io/image.c) and the transforms torchvision users know, on
-- C x H x W or N x C x H x W tensors: resize (bilinear or nearest, no
-- antialias, align_corners = false, as torchvision's tensor path),
-- center_crop, normalize, to_grayscale, and batch.
local farol = require("farol")

local image = {}

-- unknown keys in an options table are errors that name them (farol's
-- shared check); allowed is a set of names
local function check_options(fn, opts, allowed)
  local valid = {}
  for k in pairs(allowed) do valid[#valid + 1] = k end
  table.sort(valid)
  return farol.check_options(opts, fn, valid)
end
image._check_options = check_options

local function shape_str(t) return table.concat(t:size(), "x") end

-- an image tensor: C x H x W, or N x C x H x W when batch is allowed
local function check_image(fn, t, allow_batch)
  if not farol.is_tensor(t) then
    error(string.format("farol: %s: image must be a farol.Tensor, got %s", fn, type(t)), 3)
  end
  local d = t:dim()
  if d ~= 3 and not (allow_batch and d == 4) then
    error(string.format("farol: %s: image must be C x H x W%s, got shape %s", fn,
                        allow_batch and " or N x C x H x W" or "", shape_str(t)), 3)
  end
  if t:dtype() == "int64" then
    error(string.format("farol: %s: image must be float32 or float64, got int64", fn), 3)
  end
  return t:size(d - 1), t:size(d)
end

local function check_size(fn, v, what)
  if math.type(v) ~= "integer" or v < 1 or v > 65536 then
    error(string.format("farol: %s: %s must be an integer from 1 to 65536, got %s", fn, what, tostring(v)), 4)
  end
  return v
end

-- image.load(path [, {channels = 1|2|3|4}]) -> float32 C x H x W in [0, 1]
function image.load(path, opts, ...)
  if select("#", ...) > 0 then error("farol: image.load: at most 2 arguments (path, options)", 2) end
  if type(path) ~= "string" then
    error("farol: image.load: path must be a string, got " .. type(path), 2)
  end
  opts = check_options("image.load", opts, {channels = true})
  local c = opts.channels
  if c ~= nil and (math.type(c) ~= "integer" or c < 1 or c > 4) then
    error("farol: image.load: channels must be 1, 2, 3 or 4, got " .. tostring(c), 2)
  end
  return farol._image_load(path, c or 0)
end

-- image.save(path, t): C x H x W (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA)
-- or H x W, values in [0, 1] (clamped), as PNG
function image.save(path, t, ...)
  if select("#", ...) > 0 then error("farol: image.save: 2 arguments (path, image)", 2) end
  if type(path) ~= "string" then
    error("farol: image.save: path must be a string, got " .. type(path), 2)
  end
  if not farol.is_tensor(t) then error("farol: image.save: image must be a farol.Tensor, got " .. type(t), 2) end
  farol._image_save(path, t:detach())
end

-- The resize matrix of one axis, out x n: row o holds the weights of the
-- input pixels that make output pixel o.  Pixel centres map as with
-- align_corners = false: src = (o + 0.5) * n / out - 0.5, clamped at 0.
local function axis_matrix(n, out, mode, dtype)
  local rows = {}
  local scale = n / out
  for o = 0, out - 1 do
    local row = {}
    for i = 1, n do row[i] = 0 end
    if mode == "nearest" then
      row[math.min(math.floor(o * scale), n - 1) + 1] = 1
    else
      local src = math.max((o + 0.5) * scale - 0.5, 0)
      local i0 = math.floor(src)
      local i1 = i0 < n - 1 and i0 + 1 or i0
      local l1 = src - i0
      row[i0 + 1] = row[i0 + 1] + (1 - l1)
      row[i1 + 1] = row[i1 + 1] + l1
    end
    rows[o + 1] = row
  end
  return farol.tensor(rows, dtype)
end

-- torchvision's size rule: a number is the smaller edge (aspect kept, the
-- longer edge truncated), {h, w} is exact
local function output_size(fn, h, w, size)
  if type(size) == "table" and getmetatable(size) == nil then
    if #size ~= 2 then error(string.format("farol: %s: size must be a number or {h, w}", fn), 3) end
    return check_size(fn, size[1], "size[1]"), check_size(fn, size[2], "size[2]")
  end
  check_size(fn, size, "size")
  if h <= w then return size, math.max(1, math.floor(size * w / h)) end
  return math.max(1, math.floor(size * h / w)), size
end

-- image.resize(t, size [, {interpolation = "bilinear"|"nearest", antialias = false}])
-- Separable: out = Rh @ t @ Rw^T, so it is differentiable too.
function image.resize(t, size, opts, ...)
  if select("#", ...) > 0 then error("farol: image.resize: at most 3 arguments (image, size, options)", 2) end
  local h, w = check_image("image.resize", t, true)
  if h == 0 or w == 0 then  -- no pixels to interpolate from (and size * w / h would divide by 0)
    error(string.format("farol: image.resize: the image is empty (%d x %d)", h, w), 2)
  end
  opts = check_options("image.resize", opts, {interpolation = true, antialias = true})
  local mode = opts.interpolation or "bilinear"
  if mode ~= "bilinear" and mode ~= "nearest" then
    error("farol: image.resize: interpolation must be \"bilinear\" or \"nearest\", got " .. tostring(mode), 2)
  end
  if opts.antialias ~= nil and opts.antialias ~= false then
    error("farol: image.resize: antialias = true is not supported (torchvision's tensor default is false)", 2)
  end
  local oh, ow = output_size("image.resize", h, w, size)
  if oh == h and ow == w then return t end
  local dt = t:dtype()
  local out = t
  if oh ~= h then out = farol.matmul(axis_matrix(h, oh, mode, dt), out) end
  if ow ~= w then out = farol.matmul(out, axis_matrix(w, ow, mode, dt):t()) end
  return out
end

-- Python's round (half to even), which torchvision's center_crop uses
local function round_half_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then return f + 1 end
  return f
end

-- image.center_crop(t, size): size a number (square) or {h, w}; an image
-- smaller than that is padded with zeros first, as torchvision does
function image.center_crop(t, size, ...)
  if select("#", ...) > 0 then error("farol: image.center_crop: 2 arguments (image, size)", 2) end
  local h, w = check_image("image.center_crop", t, true)
  local ch, cw
  if type(size) == "table" and getmetatable(size) == nil then
    if #size ~= 2 then error("farol: image.center_crop: size must be a number or {h, w}", 2) end
    ch, cw = check_size("image.center_crop", size[1], "size[1]"), check_size("image.center_crop", size[2], "size[2]")
  else
    ch = check_size("image.center_crop", size, "size")
    cw = ch
  end
  if ch > h or cw > w then
    local l, r = cw > w and (cw - w) // 2 or 0, cw > w and (cw - w + 1) // 2 or 0
    local tp, b = ch > h and (ch - h) // 2 or 0, ch > h and (ch - h + 1) // 2 or 0
    t = farol.nn.functional.pad(t, {l, r, tp, b})
    h, w = h + tp + b, w + l + r
  end
  local top = round_half_even((h - ch) / 2)
  local left = round_half_even((w - cw) / 2)
  local d = t:dim()
  return t:narrow(d - 1, top + 1, ch):narrow(d, left + 1, cw)
end

local function channel_values(fn, v, what, c)
  if type(v) ~= "table" or getmetatable(v) ~= nil then
    error(string.format("farol: %s: %s must be an array of numbers, got %s", fn, what, type(v)), 3)
  end
  if #v ~= c then
    error(string.format("farol: %s: %s has %d values, the image has %d channels", fn, what, #v, c), 3)
  end
  for i = 1, c do
    if type(v[i]) ~= "number" then
      error(string.format("farol: %s: %s[%d] must be a number, got %s", fn, what, i, type(v[i])), 3)
    end
  end
  return v
end

-- image.normalize(t, mean, std): (t - mean[c]) / std[c] per channel
function image.normalize(t, mean, std, ...)
  if select("#", ...) > 0 then error("farol: image.normalize: 3 arguments (image, mean, std)", 2) end
  check_image("image.normalize", t, true)
  local cdim = t:dim() - 2
  local c = t:size(cdim)
  channel_values("image.normalize", mean, "mean", c)
  channel_values("image.normalize", std, "std", c)
  for i = 1, c do
    if std[i] == 0 then error(string.format("farol: image.normalize: std[%d] is 0", i), 2) end
  end
  local shape = {c, 1, 1}
  local m = farol.tensor(mean, t:dtype()):reshape(shape)
  local s = farol.tensor(std, t:dtype()):reshape(shape)
  return (t - m) / s
end

-- image.to_grayscale(t [, num_output_channels = 1 or 3]): ITU-R 601-2 luma
-- as torchvision (0.2989 R + 0.587 G + 0.114 B)
function image.to_grayscale(t, n, ...)
  if select("#", ...) > 0 then error("farol: image.to_grayscale: at most 2 arguments (image, num_output_channels)", 2) end
  check_image("image.to_grayscale", t, true)
  n = n or 1
  if n ~= 1 and n ~= 3 then
    error("farol: image.to_grayscale: num_output_channels must be 1 or 3, got " .. tostring(n), 2)
  end
  local cdim = t:dim() - 2
  local c = t:size(cdim)
  local g
  if c == 1 then
    g = t
  elseif c == 3 then
    g = t:narrow(cdim, 1, 1) * 0.2989 + t:narrow(cdim, 2, 1) * 0.587 + t:narrow(cdim, 3, 1) * 0.114
  else
    error(string.format("farol: image.to_grayscale: image must have 1 or 3 channels, got shape %s", shape_str(t)), 2)
  end
  if n == 3 then
    local shape = g:size()
    shape[cdim] = 3
    g = g:expand(shape):contiguous()
  end
  return g
end

-- image.batch(items [, transform]) -> N x C x H x W: items are paths (loaded
-- with image.load) or C x H x W tensors; transform(t, i) is applied to each
function image.batch(items, transform, ...)
  if select("#", ...) > 0 then error("farol: image.batch: at most 2 arguments (items, transform)", 2) end
  if type(items) ~= "table" or getmetatable(items) ~= nil or #items == 0 then
    error("farol: image.batch: items must be a non-empty array of paths or tensors", 2)
  end
  if transform ~= nil and type(transform) ~= "function" then
    error("farol: image.batch: transform must be a function, got " .. type(transform), 2)
  end
  local list, first = {}, nil
  for i, item in ipairs(items) do
    local t = item
    if type(item) == "string" then
      t = image.load(item)
    elseif not farol.is_tensor(item) then
      error(string.format("farol: image.batch: items[%d] must be a path or a tensor, got %s", i, type(item)), 2)
    end
    if transform then t = transform(t, i) end
    if not farol.is_tensor(t) or t:dim() ~= 3 then
      error(string.format("farol: image.batch: items[%d] must become a C x H x W tensor, got %s", i,
                          farol.is_tensor(t) and shape_str(t) or type(t)), 2)
    end
    first = first or shape_str(t)
    if shape_str(t) ~= first then
      error(string.format("farol: image.batch: items[%d] has shape %s, items[1] has %s", i, shape_str(t), first), 2)
    end
    list[i] = t
  end
  return farol.stack(list, 1)
end

farol.image = image
return image
