-- farol.dataset: attribution over a whole data set, on one machine or many.
--
-- The examples (a folder of images, or a safetensors / .npy file of
-- examples) are cut into fixed chunks of `shard_size` examples; chunk j is
-- written to OUT/attr-0000j.safetensors (tensors `attributions`, `index` =
-- 1-based example numbers, `target` = 1-based classes explained), first to a
-- temporary name then renamed, so a file that exists is complete: a run that
-- is started again skips it (resume).  `shard = {K, N}` processes the chunks
-- j with (j - 1) % N == K - 1, so N processes (a job array) share the work;
-- chunk boundaries do not depend on N, so their files are the same as one
-- run's.  Each run writes an index (index.json, or index-K-of-N.json for a
-- slice); dataset.merge writes index.json from all the chunk files.
--
-- A file of the folder that is not a readable image, or whose transformed
-- shape differs from the chunk's first good example, is reported on stderr and in the
-- index (`skipped`, with the reason) and left out (on_error = "skip", the
-- default), or stops the run with an error naming it (on_error = "fail").
local farol = require("farol")
local image = require("farol.image")

local dataset = {}

local function fail(fn, fmt, ...)
  error(string.format("farol: dataset.%s: " .. fmt, fn, ...), 0)
end

-- JSON text for the index (keys sorted, so equal indexes are equal bytes)
local function json(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local named = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r"}
      return named[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" then
    return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local inner = indent .. "  "
    if #v > 0 or next(v) == nil then
      if next(v) == nil then return "[]" end
      local parts = {}
      for i = 1, #v do parts[i] = inner .. json(v[i], inner) end
      return "[\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = inner .. json(k) .. ": " .. json(v[k], inner) end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
  end
  return "null"
end
dataset._json = json

local function write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then fail("run", "cannot write %s (%s)", tmp, err) end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then fail("run", "cannot rename %s (%s)", tmp, rerr) end
end

-- renaming a path onto itself succeeds when it exists; unlike io.open it
-- cannot block on a FIFO
local function exists(path)
  return os.rename(path, path) ~= nil
end

local IMAGE_EXT = {png = true, jpg = true, jpeg = true}

-- dataset.open(source [, {key, labels_key, transform}]) -> a data set:
--   ds.n, ds.kind ("folder" | "file"), ds:name(i), ds:get(i) -> tensor or nil, reason,
--   ds.labels (0-based class per example, from the file's labels_key) or nil
-- A folder's examples are its files (sorted by name, hidden ones and
-- subfolders aside); a file's are the rows of its tensor `key` (default
-- "images", or the file's only tensor; a .npy holds one).
function dataset.open(source, opts, ...)
  if select("#", ...) > 0 then fail("open", "at most 2 arguments (source, options)") end
  if type(source) ~= "string" then fail("open", "source must be a path, got %s", type(source)) end
  opts = farol.check_options(opts, "dataset.open", {"key", "labels_key", "transform"})
  if opts.transform ~= nil and type(opts.transform) ~= "function" then
    fail("open", "transform must be a function, got %s", type(opts.transform))
  end
  local ds = {transform = opts.transform, source = source}
  local entries = farol._listdir(source)
  if entries then
    ds.kind, ds.files, ds.ignored = "folder", {}, {}
    for _, e in ipairs(entries) do
      if e:sub(1, 1) == "." then goto continue end
      local sub = farol._listdir(source .. "/" .. e)
      if sub then
        ds.ignored[#ds.ignored + 1] = e .. "/"
      else
        ds.files[#ds.files + 1] = e
      end
      ::continue::
    end
    ds.n = #ds.files
    function ds.name(_, i) return ds.files[i] end
    function ds.get(_, i)
      local ok, t = pcall(image.load, source .. "/" .. ds.files[i])
      if not ok then return nil, tostring(t) end
      return t
    end
  else
    ds.kind = "file"
    local ok, data, err = pcall(farol.load, source)
    if not ok then fail("open", "%s: not a folder, and not a file farol can load: %s", source, tostring(data)) end
    local x, labels
    if farol.is_tensor(data) then
      x = data
    else
      local key = opts.key
      if key == nil then
        local names = {}
        for k in pairs(data) do names[#names + 1] = k end
        table.sort(names)
        key = data.images and "images" or (#names == 1 and names[1]) or nil
        if not key then
          fail("open", "%s holds %s: say which is the examples with key", source, table.concat(names, ", "))
        end
      end
      x = data[key]
      if not x then fail("open", "%s has no tensor %s", source, tostring(key)) end
      local lk = opts.labels_key or "labels"
      labels = data[lk]
      if opts.labels_key and not labels then fail("open", "%s has no tensor %s", source, lk) end
    end
    if x:dim() < 2 then fail("open", "%s: examples must be N x ..., got shape %s", source, table.concat(x:size(), "x")) end
    if labels and (labels:dim() ~= 1 or #labels ~= #x) then
      fail("open", "%s: labels must be a vector of %d, got shape %s", source, #x, table.concat(labels:size(), "x"))
    end
    ds.n, ds.x = #x, x
    if labels then ds.labels = labels:to("int64"):totable() end
    function ds.name(_, i) return "#" .. i end
    function ds.get(_, i) return x[i] end
  end
  return ds
end

-- shard = {K, N} or "K/N", K from 1 to N
local function parse_shard(s)
  local k, n
  if type(s) == "string" then
    k, n = s:match("^(%d+)/(%d+)$")
    k, n = math.tointeger(tonumber(k)), math.tointeger(tonumber(n))
  elseif type(s) == "table" then
    k, n = s[1], s[2]
  end
  if math.type(k) ~= "integer" or math.type(n) ~= "integer" or n < 1 or k < 1 or k > n then
    fail("run", "shard must be K/N with 1 <= K <= N (a job array's 0-based index i is K = i + 1), got %s",
         type(s) == "table" and ("{" .. tostring(s[1]) .. ", " .. tostring(s[2]) .. "}") or tostring(s))
  end
  return k, n
end
dataset.parse_shard = parse_shard

-- the index record of a chunk file, from its metadata
function dataset._record(path, file)
  local t, meta = farol.load(path)
  local skipped = {}
  if t.skipped then
    local ids = t.skipped:totable()
    local names, whys = {}, {}
    for line in (meta.skipped_names .. "\n"):gmatch("([^\n]*)\n") do names[#names + 1] = line end
    for line in (meta.skipped_errors .. "\n"):gmatch("([^\n]*)\n") do whys[#whys + 1] = line end
    for m, id in ipairs(ids) do skipped[m] = {index = id, name = names[m], error = whys[m]} end
  end
  return {file = file, chunk = math.tointeger(tonumber(file:match("(%d+)"))), first = math.tointeger(tonumber(meta.first)),
          last = math.tointeger(tonumber(meta.last)), attributed = math.tointeger(tonumber(meta.attributed)),
          skipped = skipped}, meta, t
end

-- the chunk files of a run's folder, in order, with the set-up they share
local function chunk_files(fn, out)
  if type(out) ~= "string" then fail(fn, "out must be a folder path, got %s", type(out)) end
  local entries = farol._listdir(out)
  if not entries then fail(fn, "%s is not a folder", out) end
  local files = {}
  for _, e in ipairs(entries) do
    if e:match("^attr%-%d+%.safetensors$") then files[#files + 1] = e end
  end
  if #files == 0 then fail(fn, "%s holds no attr-*.safetensors files", out) end
  return files
end

-- dataset.merge(out) -> path of OUT/index.json, written from every chunk
-- file there (after the N slices of a job array have run); an error lists
-- the chunks still missing
function dataset.merge(out, ...)
  if select("#", ...) > 0 then fail("merge", "one argument, the output folder") end
  local records, setup, have = {}, nil, {}
  for _, file in ipairs(chunk_files("merge", out)) do
    local rec, meta = dataset._record(out .. "/" .. file, file)
    setup = setup or meta
    if meta.examples ~= setup.examples or meta.shard_size ~= setup.shard_size or meta.source ~= setup.source then
      fail("merge", "%s/%s comes from another run (source, examples or shard_size differ)", out, file)
    end
    records[#records + 1], have[rec.chunk] = rec, true
  end
  local chunks = math.tointeger(tonumber(setup.chunks))
  local missing = {}
  for j = 1, chunks do if not have[j] then missing[#missing + 1] = j end end
  if #missing > 0 then
    fail("merge", "%s is missing chunk%s %s of %d: run the slices that own them", out, #missing > 1 and "s" or "",
         table.concat(missing, ", "), chunks)
  end
  local index = {source = setup.source, examples = math.tointeger(tonumber(setup.examples)),
                 shard_size = math.tointeger(tonumber(setup.shard_size)), chunks = chunks, shard = {1, 1},
                 files = records}
  local path = out .. "/index.json"
  write_atomic(path, json(index) .. "\n")
  return path
end

-- dataset.load(out) -> attributions, index (1-based example numbers), target,
-- skipped (array of {index, name, error}): every chunk of a finished run
function dataset.load(out, ...)
  if select("#", ...) > 0 then fail("load", "one argument, the output folder") end
  local attrs, index, target, skipped = {}, {}, {}, {}
  for _, file in ipairs(chunk_files("load", out)) do
    local rec, _, t = dataset._record(out .. "/" .. file, file)
    if t.attributions then attrs[#attrs + 1] = t.attributions end
    index[#index + 1], target[#target + 1] = t.index, t.target
    for _, s in ipairs(rec.skipped) do skipped[#skipped + 1] = s end
  end
  return #attrs > 0 and farol.cat(attrs, 1) or nil, farol.cat(index, 1), farol.cat(target, 1), skipped
end

-- the progress line: bar, count, rate and ETA, redrawn in place
local function progress_line(done, total, t0, now)
  local width = 30
  local frac = total > 0 and done / total or 1
  local fill = math.floor(frac * width + 0.5)
  local rate = done / math.max(now - t0, 1e-9)
  local eta = rate > 0 and (total - done) / rate or 0
  return string.format("\r[%s%s] %d/%d  %.1f ex/s  ETA %d:%02d ", string.rep("#", fill), string.rep(".", width - fill),
                       done, total, rate, math.floor(eta / 60), math.floor(eta % 60))
end

local RUN_KEYS = {"source", "model", "out", "method", "target", "attribute_options", "batch_size", "shard_size",
                  "shard", "on_error", "progress", "transform", "key", "labels_key", "seed", "quiet"}

-- dataset.run{source, model, out, ...} -> summary {examples, attributed, skipped,
-- chunks, chunks_done, chunks_resumed, seconds, rate}.  Options:
--   method  "Saliency" (default) or any farol attribution class name, or a
--           function(model) returning an object with :attribute
--   target  "predicted" (default: the model's top class), "labels" (the
--           file's labels, 0-based as PyTorch writes them), or a 1-based class
--   attribute_options  more options for :attribute (e.g. {n_steps = 32})
--   batch_size 32, shard_size 256 (examples per output file), shard {K, N}
--   on_error "skip" | "fail"; progress "auto" (on stderr when it is a
--   terminal) | true | false; seed (default 0; each chunk reseeds with
--   seed + chunk, so noisy methods give the same result however sharded)
function dataset.run(opts, ...)
  if select("#", ...) > 0 then fail("run", "one argument, an options table") end
  if type(opts) ~= "table" then fail("run", "expected an options table, got %s", type(opts)) end
  farol.check_options(opts, "dataset.run", RUN_KEYS)
  local out = opts.out
  if type(out) ~= "string" then fail("run", "out must be a folder path, got %s", type(out)) end
  local model = opts.model
  if model == nil then fail("run", "model is required") end
  local batch_size = opts.batch_size or 32
  local shard_size = opts.shard_size or 256
  for name, v in pairs({batch_size = batch_size, shard_size = shard_size}) do
    if math.type(v) ~= "integer" or v < 1 then fail("run", "%s must be a positive integer, got %s", name, tostring(v)) end
  end
  local k, n = 1, 1
  if opts.shard ~= nil then k, n = parse_shard(opts.shard) end
  local on_error = opts.on_error or "skip"
  if on_error ~= "skip" and on_error ~= "fail" then
    fail("run", "on_error must be \"skip\" or \"fail\", got %s", tostring(on_error))
  end
  local progress = opts.progress
  if progress == nil or progress == "auto" then
    progress = farol._isatty(2)
  elseif type(progress) ~= "boolean" then
    fail("run", "progress must be \"auto\", true or false, got %s", tostring(progress))
  end
  local target = opts.target or "predicted"
  if target ~= "predicted" and target ~= "labels" and math.type(target) ~= "integer" then
    fail("run", "target must be \"predicted\", \"labels\" or a 1-based class, got %s", tostring(target))
  end
  local method = opts.method or "Saliency"
  local make
  if type(method) == "string" then
    if type(farol[method]) ~= "function" then fail("run", "method %s is not a farol attribution method", method) end
    make = farol[method]
  elseif type(method) == "function" then
    make = method
  else
    fail("run", "method must be a name such as \"Saliency\" or a function, got %s", type(method))
  end
  local attr_opts = opts.attribute_options or {}
  if type(attr_opts) ~= "table" then fail("run", "attribute_options must be a table") end
  if attr_opts.target ~= nil then fail("run", "give the target with target, not in attribute_options") end
  local seed = opts.seed or 0
  if math.type(seed) ~= "integer" then fail("run", "seed must be an integer, got %s", tostring(seed)) end

  local ds = opts.source
  if type(ds) == "string" then
    ds = dataset.open(ds, {key = opts.key, labels_key = opts.labels_key, transform = opts.transform})
  elseif type(ds) ~= "table" or not ds.get then
    fail("run", "source must be a path or a data set from dataset.open")
  end
  if target == "labels" and not ds.labels then fail("run", "target = \"labels\" needs a file with labels") end
  local transform = ds.transform
  os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")
  if not farol._listdir(out) then fail("run", "cannot create the folder %s", out) end
  local attributor = make(model)
  for _, sub in ipairs(ds.ignored or {}) do
    io.stderr:write(string.format("farol: dataset: %s/%s is a folder, not an example: not looked into\n", ds.source, sub))
  end

  local chunks = (ds.n + shard_size - 1) // shard_size
  local mine = {}
  for j = k, chunks, n do mine[#mine + 1] = j end
  local total = 0
  for _, j in ipairs(mine) do total = total + math.min(j * shard_size, ds.n) - (j - 1) * shard_size end
  local t0, last_draw, done = farol.clock(), -1, 0
  local records, summary = {}, {examples = total, attributed = 0, skipped = 0, chunks = #mine, chunks_resumed = 0}
  local first_shape
  local function warn(msg)
    if progress then io.stderr:write("\r\27[K") end
    io.stderr:write(msg, "\n")
  end
  local function draw(force)
    if not progress then return end
    local now = farol.clock()
    if force or now - last_draw >= 0.1 then
      io.stderr:write(progress_line(done, total, t0, now))
      last_draw = now
    end
  end

  for _, j in ipairs(mine) do
    local lo, hi = (j - 1) * shard_size + 1, math.min(j * shard_size, ds.n)
    local file = string.format("attr-%05d.safetensors", j)
    local path = out .. "/" .. file
    if exists(path) then
      records[#records + 1] = dataset._record(path, file)
      summary.chunks_resumed = summary.chunks_resumed + 1
      total = total - (hi - lo + 1)
      goto next_chunk
    end
    do
      farol.manual_seed(seed + j)
      local chunk_base = done
      first_shape = nil  -- the shape every example of this chunk must have: its first good one's
      local attrs, index, targets, skipped = {}, {}, {}, {}
      local i = lo
      while i <= hi do
        local xs, ids = {}, {}
        while i <= hi and #xs < batch_size do
          local t, why = ds:get(i)
          if t and transform then
            local ok, r = pcall(transform, t, ds:name(i))
            if ok and farol.is_tensor(r) then t = r else t, why = nil, ok and "transform returned no tensor" or tostring(r) end
          end
          if t then
            local shape = table.concat(t:size(), "x")
            first_shape = first_shape or shape
            if shape ~= first_shape then t, why = nil, "shape " .. shape .. ", the first example's is " .. first_shape end
          end
          if t then
            xs[#xs + 1], ids[#ids + 1] = t, i
          else
            local msg = string.format("farol: dataset: example %d (%s): %s", i, ds:name(i), why)
            if on_error == "fail" then
              if progress then io.stderr:write("\n") end
              error(msg, 0)
            end
            warn(msg .. " -- skipped")
            skipped[#skipped + 1] = {index = i, name = (ds:name(i):gsub("\n", " ")), error = (why:gsub("\n", " "))}
          end
          i = i + 1
        end
        if #xs > 0 then
          local x = farol.stack(xs, 1)
          local tgt
          if target == "predicted" then
            local _, p = farol.no_grad(model, x):max(2)
            tgt = p:reshape(-1):totable()
          elseif target == "labels" then
            tgt = {}
            for m, id in ipairs(ids) do tgt[m] = ds.labels[id] + 1 end
          else
            tgt = {}
            for m = 1, #ids do tgt[m] = target end
          end
          local o = {target = tgt}
          for key, v in pairs(attr_opts) do o[key] = v end
          local a = attributor:attribute(x, o)
          attrs[#attrs + 1] = a:detach()
          for m, id in ipairs(ids) do
            index[#index + 1], targets[#targets + 1] = id, tgt[m]
          end
        end
        done = chunk_base + (i - lo)
        draw(false)
      end
      local tensors = {index = farol.tensor(#index > 0 and index or {0}, "int64"),
                       target = farol.tensor(#targets > 0 and targets or {0}, "int64")}
      if #index == 0 then
        tensors.index, tensors.target = tensors.index:narrow(1, 1, 0), tensors.target:narrow(1, 1, 0)
      else
        tensors.attributions = farol.cat(attrs, 1)
      end
      local meta = {first = tostring(lo), last = tostring(hi), attributed = tostring(#index),
                    examples = tostring(ds.n), shard_size = tostring(shard_size), chunks = tostring(chunks),
                    source = ds.source}
      if #skipped > 0 then
        local ids, names, whys = {}, {}, {}
        for m, sk in ipairs(skipped) do ids[m], names[m], whys[m] = sk.index, sk.name, sk.error end
        tensors.skipped = farol.tensor(ids, "int64")
        meta.skipped_names, meta.skipped_errors = table.concat(names, "\n"), table.concat(whys, "\n")
      end
      -- complete under a name no reader takes for a chunk, then renamed
      local tmp = string.format("%s/attr-%05d.partial.safetensors", out, j)
      farol.save(tmp, tensors, {metadata = meta})
      local ok, err = os.rename(tmp, path)
      if not ok then fail("run", "cannot rename %s (%s)", tmp, err) end
      records[#records + 1] = {file = file, chunk = j, first = lo, last = hi, attributed = #index, skipped = skipped}
      summary.attributed = summary.attributed + #index
      summary.skipped = summary.skipped + #skipped
    end
    ::next_chunk::
  end
  summary.seconds = farol.clock() - t0
  summary.rate = (summary.attributed + summary.skipped) / math.max(summary.seconds, 1e-9)
  if progress then
    done = total
    draw(true)
    io.stderr:write("\n")
  end
  local index = {source = ds.source, examples = ds.n, shard_size = shard_size, chunks = chunks,
                 shard = {k, n}, files = records}
  summary.index = out .. "/" .. (n == 1 and "index.json" or string.format("index-%d-of-%d.json", k, n))
  write_atomic(summary.index, json(index) .. "\n")
  return summary
end

farol.dataset = dataset
return dataset
