// registry.h — the config schema: ONE table of every dotted key ("model.d_model") with its
// type, its accessor into Config, its per-key rule and a one-line doc. YAML parsing, --set
// overrides, validation, config_to_yaml, config_keys() and the "did you mean" suggestions all
// read this table (configs/registry.cpp), so no key is listed twice. Rules that tie several
// keys together (d_model divisible by n_heads, ...) live in validate_config (loader.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>
#include "configs/config.h"

namespace skein {

enum class KeyType { Int, UInt, Float, Bool, String, StringList, PathList };
// "int", "unsigned int", "float", "bool", "string", "list of strings", "list of {path, weight}"
// (used in errors and docs).
const char* key_type_name(KeyType t);

// One key's value; the alternative matches the key's KeyType (in enum order).
using ConfigValue =
    std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<std::string>, std::vector<DataPath>>;

struct ConfigKey {
  std::string name;   // "model.d_model"
  KeyType type;
  std::string doc;    // one line
  std::string rule;   // the per-key rule in words ("must be >= 1"; "" when any value goes)
  std::function<ConfigValue(const Config&)> get;
  std::function<void(Config&, const ConfigValue&)> set;
  std::function<bool(const ConfigValue&)> valid;  // the per-key rule
};

// The schema, in order (sections model, data, train, optim, parallel, checkpoint, log, distill).
const std::vector<ConfigKey>& config_schema();
// The entry for a dotted key, or nullptr.
const ConfigKey* find_config_key(const std::string& name);
// The section names, in schema order ("model", "data", ...).
std::vector<std::string> config_sections();

// A value as YAML text that reads back to the identical value: shortest round-trip doubles
// (always with a '.', 'e', "inf" or "nan" so that YAML sees a float), strings plain when safe and
// double-quoted otherwise, lists in flow style ("[decay, gla]").
std::string format_config_value(const ConfigValue& v);
// The value of one dotted key as YAML text (e.g. for run names and logs); throws on an unknown key.
std::string config_value(const Config& cfg, const std::string& key);
// Every schema key equal (doubles compared with ==).
bool configs_equal(const Config& a, const Config& b);

}  // namespace skein
