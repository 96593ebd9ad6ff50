// cli_checks.h — range checks of `skein` command-line options, in the config keys' error style
// ("--tokens: invalid value -5 (must be >= 1)"); used by launch/main.cpp before any work.
#pragma once
#include <cmath>
#include <sstream>
#include <string>
#include "core/error.h"

namespace skein {

// Throws skein::Error "<option>: invalid value <v> (<rule>)" when !ok.
template <class T>
void check_option(bool ok, const std::string& option, const T& value, const std::string& rule) {
  if (ok) return;
  std::ostringstream os;
  os << option << ": invalid value " << value << " (" << rule << ")";
  throw Error(os.str());
}

// lo <= v <= hi.
template <class T>
void check_option_range(const std::string& option, const T& v, const T& lo, const T& hi) {
  std::ostringstream rule;
  rule << "must lie in [" << lo << ", " << hi << "]";
  check_option(v >= lo && v <= hi, option, v, rule.str());
}

// A finite value in [lo, hi].
inline void check_option_finite(const std::string& option, double v, double lo, double hi) {
  std::ostringstream rule;
  rule << "must be finite and lie in [" << lo << ", " << hi << "]";
  check_option(std::isfinite(v) && v >= lo && v <= hi, option, v, rule.str());
}

}  // namespace skein
