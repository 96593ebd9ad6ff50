// loader.h — reading and writing Config: YAML files (yaml-cpp), `section.key=value`
// overrides, validation. Every error names the dotted key and where it came from (file and
// line, or "--set"), and for an unknown key the closest valid one.
#pragma once
#include <string>
#include <vector>
#include "configs/config.h"

namespace skein {

// Defaults, then the YAML file (path "" = none), then each override in order; validated.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text; `source` names it in errors (e.g. the file name).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
// Applies one "section.key=value" (value in YAML syntax); throws naming key and source.
void apply_override(Config& cfg, const std::string& assignment, const std::string& source = "--set");
// Checks every value's range and the cross-field rules; throws naming the dotted key.
void validate_config(const Config& cfg);
// The resolved config as YAML (every key, in schema order); parse_config of it round-trips.
std::string config_to_yaml(const Config& cfg);
// All dotted keys of the schema, in order ("model.d_model", ...).
std::vector<std::string> config_keys();

}  // namespace skein
