-- The pure-Lua part of farol, loaded by the C module once its functions are
-- in place: neural-network modules and the attribution front ends.
local farol = require("farol")
farol.nn = require("farol.nn")
require("farol.attr")
farol.models = require("farol.models")
require("farol.image")
require("farol.viz")
require("farol.dataset")
-- help(x): docs/API.md on x (loaded on first use)
function farol.help(...) return require("farol.help").help(...) end
return farol
