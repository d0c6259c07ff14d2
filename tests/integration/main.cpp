// Test main of integration_tests: GoogleTest's flags first, then our own:
//   --cycles N   SIGKILL cycles per crash test (default 20; TARGETS.md asks 200 on demand)
//   --seed S     base seed of the crash test (default: random, printed)

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace possync::test {
int crash_cycles = 20;
unsigned long long crash_seed = 0;
} // namespace possync::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    char* end = nullptr;
    if (arg == "--cycles") {
      const char* v = value("--cycles");
      long n = std::strtol(v, &end, 10);
      if (*end != '\0' || n < 1 || n > 1'000'000) {
        std::fprintf(stderr, "--cycles must be a number from 1 to 1000000, got '%s'\n", v);
        return 2;
      }
      possync::test::crash_cycles = static_cast<int>(n);
    } else if (arg == "--seed") {
      const char* v = value("--seed");
      possync::test::crash_seed = std::strtoull(v, &end, 10);
      if (*end != '\0') {
        std::fprintf(stderr, "--seed must be a number, got '%s'\n", v);
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown argument '%s' (own flags: --cycles N, --seed S)\n", arg.c_str());
      return 2;
    }
  }
  return RUN_ALL_TESTS();
}
