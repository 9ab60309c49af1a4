#include "env_expand.h"

#include <cstdlib>
#include <stdexcept>

namespace sluice {
namespace {

bool isNameStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool isNameChar(char c) {
  return isNameStart(c) || (c >= '0' && c <= '9');
}

}  // namespace

EnvironmentLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value || !*value) return std::nullopt;
    return std::string(value);
  };
}

std::string expandVariables(const std::string& text, const EnvironmentLookup& lookup) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    size_t end = text.find('}', i + 2);
    if (end == std::string::npos) throw std::invalid_argument("'${' without a closing '}' (write '$${' for a literal)");
    std::string name = text.substr(i + 2, end - i - 2);
    bool valid = !name.empty() && isNameStart(name[0]);
    for (char c : name) valid = valid && isNameChar(c);
    if (!valid) throw std::invalid_argument("'${" + name + "}' is not a variable name (letters, digits, '_')");
    auto value = lookup(name);
    if (!value) throw std::invalid_argument("environment variable " + name + " is not set (or is empty)");
    if (value->find('\n') != std::string::npos) {
      throw std::invalid_argument("environment variable " + name + " holds a line break");
    }
    out += *value;
    i = end + 1;
  }
  return out;
}

void expandDocument(const YamlReader& r, YAML::Node document, const EnvironmentLookup& lookup) {
  if (document.IsScalar()) {
    const std::string text = document.Scalar();
    if (text.find("${") == std::string::npos) return;
    try {
      document = expandVariables(text, lookup);
    } catch (const std::invalid_argument& e) {
      r.fail(document, e.what());
    }
  } else if (document.IsSequence()) {
    for (auto item : document) expandDocument(r, item, lookup);
  } else if (document.IsMap()) {
    for (auto entry : document) expandDocument(r, entry.second, lookup);
  }
}

}  // namespace sluice
