// error.h — the two error macros of skein.
//   SKEIN_CHECK(cond, msg...)  : a user mistake (bad shape, bad config). Throws skein::Error
//                                 with the message built from its arguments (values included).
//   SKEIN_ASSERT(cond, msg...) : a broken invariant (a bug in skein). Prints file:line and aborts.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace skein {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void assert_fail(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

// "[2,3]" — used in every shape message.
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace skein

#define SKEIN_CHECK(cond, ...)                                        \
  do {                                                                \
    if (!(cond)) throw ::skein::Error(::skein::detail::concat(__VA_ARGS__)); \
  } while (0)

#define SKEIN_ASSERT(cond, ...)                                                     \
  do {                                                                              \
    if (!(cond))                                                                    \
      ::skein::detail::assert_fail(#cond, __FILE__, __LINE__,                       \
                                   ::skein::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
